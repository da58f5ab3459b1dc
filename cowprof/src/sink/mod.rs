//! Sinks: the consumers at the end of the pipeline. Each runs with its own
//! state and gets its data from the collector over a bounded channel.
pub mod events;
pub mod summary;
pub mod tables;
