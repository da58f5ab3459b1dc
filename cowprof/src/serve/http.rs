//! The HTTP side: a few worker threads answer `/metrics`, `/healthz` and
//! `/`. They hold no metrics: each scrape is a request to the exporter's
//! thread, which owns the state and answers with the exposition text.
use std::{sync::Arc, thread::JoinHandle, time::Duration};

use crossbeam_channel::{bounded, Sender};
use tiny_http::{Header, Method, Request, Response, Server};

use super::exposition::Format;

/// Worker threads: a slow client holds one, not the exporter.
pub const WORKERS: usize = 2;

/// How long a request waits for the exporter's thread.
const EXPORTER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a worker asks the exporter's thread.
#[derive(Debug)]
pub enum Ask {
    /// The exposition in this format.
    Metrics(Format, Sender<String>),
    /// Whether the exporter's thread is alive and the probes are reading.
    Health(Sender<Result<(), String>>),
}

/// The running workers; [`Workers::stop`] ends them.
pub struct Workers {
    server: Arc<Server>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts [`WORKERS`] threads answering requests on `server`.
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub fn spawn(server: Arc<Server>, asks: &Sender<Ask>) -> std::io::Result<Self> {
        let mut threads = Vec::new();
        for i in 0..WORKERS {
            let server = Arc::clone(&server);
            let asks = asks.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("cowprof-http-{i}"))
                    .spawn(move || {
                        for request in server.incoming_requests() {
                            answer(request, &asks);
                        }
                    })?,
            );
        }
        Ok(Self { server, threads })
    }

    /// Stops accepting and joins the workers.
    pub fn stop(self) {
        for _ in &self.threads {
            self.server.unblock();
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header names are valid")
}

fn text(status: u16, body: impl Into<String>) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body.into())
        .with_status_code(status)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

/// Answers one request. Errors writing to a client that left are ignored.
fn answer(request: Request, asks: &Sender<Ask>) {
    if !matches!(request.method(), Method::Get | Method::Head) {
        let response = text(405, "only GET and HEAD\n").with_header(header("Allow", "GET, HEAD"));
        let _ = request.respond(response);
        return;
    }
    let path = request.url().split('?').next().unwrap_or("/").to_owned();
    let response = match path.as_str() {
        "/metrics" => {
            let accept = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Accept"))
                .map(|h| h.value.as_str().to_owned());
            let format = Format::negotiate(accept.as_deref());
            let (tx, rx) = bounded(1);
            match ask(asks, Ask::Metrics(format, tx)).and_then(|()| {
                rx.recv_timeout(EXPORTER_TIMEOUT)
                    .map_err(|_| "the exporter did not answer in time".to_owned())
            }) {
                Ok(body) => Response::from_string(body)
                    .with_header(header("Content-Type", format.content_type())),
                Err(err) => text(503, format!("{err}\n")),
            }
        }
        "/healthz" => {
            let (tx, rx) = bounded(1);
            match ask(asks, Ask::Health(tx)).and_then(|()| {
                rx.recv_timeout(EXPORTER_TIMEOUT)
                    .map_err(|_| "the exporter did not answer in time".to_owned())
            }) {
                Ok(Ok(())) => text(200, "ok\n"),
                Ok(Err(err)) | Err(err) => text(503, format!("{err}\n")),
            }
        }
        "/" => text(
            200,
            "cowprof exporter\n/metrics  COW fault metrics (Prometheus text or OpenMetrics, by Accept)\n/healthz  200 while the probes are read\n",
        ),
        _ => text(404, "not found: try /metrics\n"),
    };
    let _ = request.respond(response);
}

fn ask(asks: &Sender<Ask>, what: Ask) -> Result<(), String> {
    asks.send_timeout(what, EXPORTER_TIMEOUT)
        .map_err(|_| "the exporter is not answering".to_owned())
}
