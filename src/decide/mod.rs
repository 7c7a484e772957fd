//! Stage 3, decide: the kill policy, a pure function of this cycle's usage,
//! containers, configuration and clock.

pub mod policy;
