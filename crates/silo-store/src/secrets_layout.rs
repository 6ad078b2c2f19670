//! Where a service's credentials live and what their variables are called.
//! Every part of silo that names a secrets file or one of its variables
//! asks this module; [`crate::SecretsDir`] reads and writes the files.
//!
//! A service's credentials are `<data_dir>/secrets/<service>.env`, holding
//! `DATABASE_URL` and the per-field variables seed 004's services read:
//! `<SERVICE>_DB_HOST`, `_PORT`, `_USER`, `_PASSWORD`, `_NAME` on
//! PostgreSQL, `<SERVICE>_DB_PATH` on SQLite.

/// The folder of secrets files inside the data dir.
pub const SECRETS_FOLDER: &str = "secrets";

/// The folder inside the secrets folder that holds the NATS users'
/// credentials (`silo events nats-config`): `secrets/nats/<user>.env`.
pub const NATS_FOLDER: &str = "nats";

/// The variable of a NATS credentials file that holds the user's name.
pub const NATS_USER: &str = "NATS_USER";

/// The variable of a NATS credentials file that holds the password.
pub const NATS_PASSWORD: &str = "NATS_PASSWORD";

/// A NATS user's credentials file relative to the data dir:
/// `secrets/nats/<user>.env`.
pub fn nats_relative_path(user: &str) -> String {
    format!("{SECRETS_FOLDER}/{NATS_FOLDER}/{}", file_name(user))
}

/// The variable of a service's secrets file that holds its gateway
/// credential: the bearer token `silo gateway` knows the service by.
pub const GATEWAY_TOKEN: &str = "SILO_GATEWAY_TOKEN";

/// The variable that holds the whole connection URL, password included.
pub const DATABASE_URL: &str = "DATABASE_URL";

/// The name of `service`'s secrets file: `<service>.env`.
pub fn file_name(service: &str) -> String {
    format!("{service}.env")
}

/// `service`'s secrets file relative to the data dir, with `/` whatever
/// the platform: `secrets/<service>.env`, as source code would name it.
pub fn relative_path(service: &str) -> String {
    format!("{SECRETS_FOLDER}/{}", file_name(service))
}

/// What every per-field variable of `service` starts with: `BILLING_DB_`.
pub fn var_prefix(service: &str) -> String {
    format!("{}_DB_", service.to_uppercase())
}

/// One per-field variable of a secrets file: `<SERVICE>_DB_<FIELD>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The SQLite file (`_DB_PATH`).
    Path,
    /// The server's host or socket folder (`_DB_HOST`).
    Host,
    /// The server's port (`_DB_PORT`).
    Port,
    /// The login role (`_DB_USER`).
    User,
    /// The role's password (`_DB_PASSWORD`).
    Password,
    /// The database (`_DB_NAME`).
    Name,
}

impl Field {
    /// Every field, in the order a file lists them.
    pub const ALL: [Field; 6] = [
        Field::Path,
        Field::Host,
        Field::Port,
        Field::User,
        Field::Password,
        Field::Name,
    ];

    /// What the variable's name ends with after the prefix.
    fn suffix(self) -> &'static str {
        match self {
            Field::Path => "PATH",
            Field::Host => "HOST",
            Field::Port => "PORT",
            Field::User => "USER",
            Field::Password => "PASSWORD",
            Field::Name => "NAME",
        }
    }

    /// The variable's name for `service`: `BILLING_DB_PASSWORD`.
    pub fn var(self, service: &str) -> String {
        format!("{}{}", var_prefix(service), self.suffix())
    }

    /// The field a variable named `<ANY>_DB_<FIELD>` holds, whichever
    /// service's prefix it carries: the audit reads a file copied from
    /// another service as it is.
    pub fn of_var(name: &str) -> Option<Field> {
        let (_, suffix) = name.rsplit_once("_DB_")?;
        Field::ALL.into_iter().find(|f| f.suffix() == suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The layout is a contract with every service that reads its
    // credentials: changing a name here breaks them.
    #[test]
    fn layout() {
        assert_eq!(file_name("orders"), "orders.env");
        assert_eq!(relative_path("orders"), "secrets/orders.env");
        let dir = crate::SecretsDir::new(std::path::Path::new("/p/.silo"));
        assert_eq!(dir.dir(), std::path::Path::new("/p/.silo/secrets"));
        assert_eq!(
            dir.path("orders"),
            std::path::Path::new("/p/.silo/secrets/orders.env")
        );
        assert_eq!(var_prefix("line_items"), "LINE_ITEMS_DB_");
        let vars: Vec<String> = Field::ALL.iter().map(|f| f.var("auth")).collect();
        assert_eq!(
            vars,
            [
                "AUTH_DB_PATH",
                "AUTH_DB_HOST",
                "AUTH_DB_PORT",
                "AUTH_DB_USER",
                "AUTH_DB_PASSWORD",
                "AUTH_DB_NAME"
            ]
        );
        assert_eq!(DATABASE_URL, "DATABASE_URL");
        assert_eq!(nats_relative_path("orders"), "secrets/nats/orders.env");
        assert_eq!(
            dir.nats_path("orders"),
            std::path::Path::new("/p/.silo/secrets/nats/orders.env")
        );
    }

    #[test]
    fn fields_are_read_from_any_services_variables() {
        for field in Field::ALL {
            assert_eq!(Field::of_var(&field.var("billing")), Some(field));
            assert_eq!(Field::of_var(&field.var("line_items")), Some(field));
        }
        assert_eq!(Field::of_var("DATABASE_URL"), None);
        assert_eq!(Field::of_var("BILLING_DB_USERNAME"), None);
        assert_eq!(Field::of_var("BILLING_USER"), None);
    }
}
