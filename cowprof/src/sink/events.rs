//! `--events FILE`: every fault as a JSON line, written on a thread of its
//! own from the collector's event batches.
use std::{
    fs::File,
    io::{self, BufWriter, Write},
    sync::mpsc::{sync_channel, Receiver, SyncSender},
    thread::JoinHandle,
};

use cowprof_common::{FaultEvent, Kind};
use serde::Serialize;

use cowprof_model::keys::comm_str;

/// Batches the writer can hold queued (each up to one drain batch).
const QUEUE: usize = 256;

/// One event as a JSON line.
#[derive(Serialize)]
struct EventLine<'a> {
    ts_ns: u64,
    pid: u32,
    tid: u32,
    comm: &'a str,
    kind: &'static str,
    addr: u64,
    ip: u64,
    latency_ns: u64,
    error_code: u32,
    vm_start: u64,
    vm_end: u64,
    vm_pgoff: u64,
    vm_flags: u64,
    dev: u32,
    ino: u64,
    code_vm_start: u64,
    code_vm_pgoff: u64,
    code_dev: u32,
    code_ino: u64,
}

fn write_event(out: &mut impl Write, event: &FaultEvent) -> io::Result<()> {
    let comm = comm_str(&event.comm);
    let line = EventLine {
        ts_ns: event.ts_ns,
        pid: event.pid,
        tid: event.tid,
        comm: &comm,
        kind: Kind::from_u8(event.kind).map_or("unknown", Kind::name),
        addr: event.addr,
        ip: event.ip,
        latency_ns: event.latency_ns,
        error_code: event.error_code,
        vm_start: event.vma.vm_start,
        vm_end: event.vma.vm_end,
        vm_pgoff: event.vma.vm_pgoff,
        vm_flags: event.vma.vm_flags,
        dev: event.vma.dev,
        ino: event.vma.ino,
        code_vm_start: event.code.vm_start,
        code_vm_pgoff: event.code.vm_pgoff,
        code_dev: event.code.dev,
        code_ino: event.code.ino,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// The events file's writer thread.
pub struct EventsFile {
    thread: JoinHandle<Result<u64, io::Error>>,
}

impl EventsFile {
    /// Starts writing to `file`; the collector sends to the returned
    /// sender, and the writer ends when it is dropped.
    ///
    /// # Errors
    /// When the OS cannot create a thread.
    pub fn spawn(file: File) -> io::Result<(Self, SyncSender<Vec<FaultEvent>>)> {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("cowprof-events".into())
            .spawn(move || write_all(&rx, BufWriter::new(file)))?;
        Ok((Self { thread }, tx))
    }

    /// Waits for the writer to finish. Returns the events written.
    ///
    /// # Errors
    /// When writing failed: the file is then partial.
    pub fn finish(self) -> Result<u64, String> {
        match self.thread.join() {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err("the events writer thread failed".to_owned()),
        }
    }
}

fn write_all(rx: &Receiver<Vec<FaultEvent>>, mut out: BufWriter<File>) -> io::Result<u64> {
    let mut written = 0;
    for batch in rx {
        for event in &batch {
            write_event(&mut out, event)?;
            written += 1;
        }
    }
    out.flush()?;
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_all()?;
    Ok(written)
}
