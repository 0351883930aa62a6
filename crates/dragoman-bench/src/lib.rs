//! dragoman-bench: the project's own load benchmark (a mock upstream, a closed- and open-loop
//! load generator, and the orchestration that runs the gateway between them). A library as
//! well as a binary so its tests can drive the mock and the load generator in process.

pub mod bench;
pub mod load;
pub mod mock;
pub mod procfs;
pub mod report;
pub mod soak;
