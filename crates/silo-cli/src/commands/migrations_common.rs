//! What the migration commands share: the lock policy, version arguments,
//! and reporting a service's migration error.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use miette::Report;
use silo_manifest::Service;
use silo_migrate::{LockPolicy, MigrateError, ServiceError, Version};

use crate::context::{Failure, exit_code_all, exit_code_of};
use crate::interrupt;

/// How `service`'s run waits for the migration lock: `lock_timeout`
/// seconds (`--lock-timeout`), saying who it waits for, and cancelled by
/// Ctrl-C.
pub(crate) fn policy(service: &str, lock_timeout: u64) -> LockPolicy {
    let service = service.to_string();
    LockPolicy {
        timeout: Duration::from_secs(lock_timeout),
        on_wait: Arc::new(move |who| {
            errln!("{service}: waiting for {who} to finish migrating this store");
        }),
        cancel: interrupt::token(),
    }
}

/// A version given on the command line; a bad one is a usage error.
pub(crate) fn version(text: &str, flag: &str) -> Result<Version, Failure> {
    Version::parse(text)
        .map_err(|e| Failure::usage(miette::miette!("invalid {flag} `{text}`: {e}")))
}

/// `service`'s migration error as a diagnostic: its message prefixed with
/// the service, and a failed file's source with the failing spot
/// underlined.
pub(crate) fn report(service: &str, e: MigrateError) -> Report {
    Report::new(ServiceError::new(service, e))
}

/// `service`'s migration error as the command's failure, with its exit
/// code.
pub(crate) fn migrate_failure(service: &str, e: MigrateError) -> Failure {
    Failure {
        code: exit_code_of(&e),
        report: report(service, e),
    }
}

/// The exit code of a command run over many services.
pub(crate) fn exit_code<T>(results: &[(&Service, Result<T, MigrateError>)]) -> ExitCode {
    exit_code_all(results.iter().filter_map(|(_, r)| r.as_ref().err()))
}
