//! One module per command.

pub mod adopt;
pub mod audit;
pub mod connect;
pub mod credentials;
pub mod down;
pub mod init;
pub mod lint;
pub mod migrations;
pub mod status;
pub mod up;
