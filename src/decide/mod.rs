//! Stage 3, decide: the kill policy, a pure function of this cycle's usage,
//! containers, configuration and clock.
//!
//! - `policy`: the rule (keep the lightest of each type, stop the rest);
//! - `plan`: what it decides, an action for every container;
//! - `reason`: why, as data with its figures.

pub mod plan;
pub mod policy;
pub mod reason;
