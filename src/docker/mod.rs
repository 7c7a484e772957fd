//! Stage 2, join: what Docker knows of the containers, through bollard.
//!
//! - `container`: one container as gestor sees it, and its type (pure);
//! - `client`: the only code that talks to Docker, every call bounded;
//! - `inventory`: the containers known now (a listing per cycle, or events);
//! - `placement`: a process counts for a container only where Docker put it;
//! - `log_service`: where the log service is.

pub mod client;
pub mod container;
pub mod inventory;
pub mod log_service;
pub mod placement;
