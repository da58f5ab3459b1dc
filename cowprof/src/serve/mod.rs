//! `cowprof serve`: a Prometheus exporter.
//!
//! The collector sums faults per label set and sends them, named, at most
//! every 100 ms (`report::tallies`); it keeps no state of its own, so a
//! system-wide exporter does not grow with every process it ever saw. This
//! thread owns the exporter ([`exporter`]): the metrics, the top-K label
//! dimensions ([`labels`]) and the processes behind them ([`processes`]).
//! HTTP workers ([`http`]) ask it for each scrape.
pub mod exporter;
pub mod exposition;
pub mod http;
pub mod labels;
pub mod latency;
pub mod processes;
#[cfg(test)]
mod tests;
pub mod usage;

use std::{
    net::{SocketAddr, ToSocketAddrs as _},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crossbeam_channel::{bounded, select};

use self::{
    exporter::{Exporter, Limits, ProbeInfo},
    exposition::{prometheus_text, Format},
    http::{Ask, Workers},
};
use crate::{
    collector::{CollectorOptions, Sinks},
    probe::ProbeOptions,
    recording::{describe, RecordError, Recording, RecordingOptions},
    report::tallies::TallyLabels,
    target::Target,
};

/// Where the exporter listens unless told otherwise: loopback only, since
/// its labels carry process and file names.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// How often processes are checked and expired values dropped.
const MAINTAIN: Duration = Duration::from_secs(1);

/// The longest the collector may stay silent before `/healthz` fails (it
/// sends the kernel's counters every second).
const SILENCE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--listen {0:?} is not HOST:PORT (for example 127.0.0.1:9464 or [::1]:9464)")]
    BadListen(String),
    #[error("cannot listen on {addr}: {reason}; stop what uses it, or pick another address with --listen")]
    Listen { addr: SocketAddr, reason: String },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// What to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: String,
    pub target: Target,
    pub probe: ProbeOptions,
    pub limits: Limits,
    /// Where separate debug files are looked for.
    pub debug_dirs: crate::resolve::symbols::DebugDirs,
}

/// Parses `--listen`: an address and port, or a host name and port.
///
/// # Errors
/// When it is neither.
pub fn parse_listen(listen: &str) -> Result<SocketAddr, ServeError> {
    if let Ok(addr) = listen.parse::<SocketAddr>() {
        return Ok(addr);
    }
    listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| ServeError::BadListen(listen.to_owned()))
}

/// Serves until `interrupted` is set.
///
/// # Errors
/// When the address is bad or taken, the probes cannot be loaded, the
/// target cannot be started, or a thread cannot be created.
pub fn run(options: &ServeOptions, interrupted: &AtomicBool) -> Result<(), ServeError> {
    let addr = parse_listen(&options.listen)?;
    // Listen before paying for the probes: a taken port fails at once.
    let server = tiny_http::Server::http(addr).map_err(|err| ServeError::Listen {
        addr,
        reason: err.to_string(),
    })?;
    let server = Arc::new(server);
    let addr = server.server_addr().to_ip().unwrap_or(addr);
    let (tallies_tx, tallies) = bounded(4);
    let labels = TallyLabels {
        sections: options.limits.sections,
        symbols: options.limits.symbols,
    };
    let mut recording = Recording::start(
        RecordingOptions {
            target: options.target.clone(),
            probe: options.probe,
            collector: CollectorOptions {
                stateless: true,
                tally_labels: labels,
                debug_dirs: options.debug_dirs.clone(),
                ..CollectorOptions::default()
            },
            announce: false,
            command_output: None,
        },
        Sinks {
            tallies: Some(tallies_tx),
            ..Sinks::default()
        },
    )?;
    let info = ProbeInfo {
        strategy: recording.strategy().name(),
        kernel: crate::kernel::release(),
        programs: recording.programs(),
    };
    let mut exporter = Exporter::new(options.limits, &info, processes::procfs_identity);
    let (asks_tx, asks) = bounded(16);
    let workers = Workers::spawn(Arc::clone(&server), &asks_tx).map_err(ServeError::Thread)?;
    drop(asks_tx);
    eprintln!(
        "cowprof: serving http://{addr}/metrics for {} with the {} strategy; Ctrl-C stops",
        describe(&options.target, recording.child_pid()),
        info.strategy,
    );
    let mut maintained = Instant::now();
    let mut heard = Instant::now();
    let mut command_done = false;
    while !interrupted.load(Ordering::Acquire) {
        select! {
            recv(tallies) -> batch => {
                if let Ok(batch) = batch {
                    exporter.apply(&batch, Instant::now());
                    heard = Instant::now();
                }
            }
            recv(asks) -> ask => match ask {
                Ok(Ask::Metrics(format, reply)) => {
                    let text = exporter.openmetrics();
                    let _ = reply.send(match format {
                        Format::OpenMetrics => text,
                        Format::Prometheus => prometheus_text(&text),
                    });
                }
                Ok(Ask::Health(reply)) => {
                    let silent = heard.elapsed();
                    let _ = reply.send(if silent > SILENCE {
                        Err(format!("no data from the probes for {} s", silent.as_secs()))
                    } else {
                        Ok(())
                    });
                }
                Err(_) => break,
            },
            default(Duration::from_millis(100)) => {}
        }
        if maintained.elapsed() >= MAINTAIN {
            exporter.maintain(Instant::now());
            maintained = Instant::now();
        }
        if !command_done {
            if let Some((_, code)) = recording.poll(Duration::ZERO)? {
                command_done = true;
                match code {
                    Some(code) => eprintln!(
                        "cowprof: the command exited ({code}); still serving until Ctrl-C"
                    ),
                    None => eprintln!("cowprof: the target exited; still serving until Ctrl-C"),
                }
            }
        }
    }
    workers.stop();
    drop(recording);
    Ok(())
}
