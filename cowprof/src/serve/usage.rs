//! cowprof's own cost, read from `/proc/self/stat` at each scrape: the
//! usual `process_cpu_seconds_total` and `process_resident_memory_bytes`.
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Unit,
};

/// Reads cowprof's CPU time and resident memory when scraped.
#[derive(Debug)]
pub struct SelfUsage;

/// CPU seconds (user and system, every thread) and resident bytes.
#[must_use]
pub fn read() -> Option<(f64, u64)> {
    let stat = crate::kernel::procstat::read(None)?;
    #[expect(clippy::cast_precision_loss, reason = "clock ticks fit an f64")]
    let cpu = (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64;
    Some((cpu, stat.rss * procfs::page_size()))
}

impl Collector for SelfUsage {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((cpu, rss)) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(cpu);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "CPU time cowprof used, user and system, in every thread",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let rss = ConstGauge::new(i64::try_from(rss).unwrap_or(i64::MAX));
        rss.encode(encoder.encode_descriptor(
            "process_resident_memory",
            "cowprof's resident memory",
            Some(&Unit::Bytes),
            rss.metric_type(),
        )?)?;
        Ok(())
    }
}
