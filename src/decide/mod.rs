//! Stage 3, decide: the kill policy, a pure function of this cycle's usage,
//! containers, configuration and clock.
//!
//! - `engine`: the policy's rules applied to this cycle's containers (pure);
//! - `policy`: keep the lightest of each type and stop the rest, the default
//!   rule, and the ranking, bounds and grace the engine shares;
//! - `plan`: what it decides, an action for every container;
//! - `reason`: why, as data with its figures;
//! - `rules`: the policy as data: rules read from a file, or the default.

pub mod engine;
pub mod plan;
pub mod policy;
pub mod reason;
pub mod rules;
