//! The event follower's reconnects back off, also when Docker's event stream
//! ends at once, cleanly or with an error.
//!
//! The daemon is the real `gestor` binary; what it talks to is a stand-in for
//! dockerd (a Unix socket in a temporary directory, served by this test),
//! because a fake is the only way to make the event stream end on cue, every
//! time: a real dockerd keeps it open. The stand-in speaks just enough of the
//! Docker API (`/_ping`, `/version`, `/containers/json`, `/events`) and notes
//! when each request came, so the test reads the delays between reconnects
//! from the requests themselves.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the stand-in answers `/events`.
#[derive(Clone, Copy)]
enum EventsAnswer {
    /// 200 and an empty body: the stream ends at once, with no error.
    EndsAtOnce,
    /// 500: the stream ends with an error as soon as it starts.
    ServerError,
}

/// A stand-in for dockerd on a Unix socket, answering each request on a
/// connection of its own and noting what was asked, and when.
struct FakeDocker {
    dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeDocker {
    fn start(events: EventsAnswer) -> FakeDocker {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("docker.sock")).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    answer(conn, events, &log);
                }
            }
        });
        FakeDocker {
            dir,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// When each request for `route` came, in order.
    fn times(&self, route: &str) -> Vec<Instant> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| r == route)
            .map(|(t, _)| *t)
            .collect()
    }
}

impl Drop for FakeDocker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = UnixStream::connect(self.dir.path().join("docker.sock"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request's head, answers it and closes the connection.
fn answer(mut conn: UnixStream, events: EventsAnswer, log: &Mutex<Vec<(Instant, String)>>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    // bollard prefixes the API version (`/v1.41/containers/json`).
    let route = match path.strip_prefix("/v") {
        Some(rest) => rest.find('/').map_or(path, |i| &rest[i..]),
        None => path,
    };
    log.lock()
        .unwrap()
        .push((Instant::now(), route.to_string()));
    let (status, body) = match (route, events) {
        ("/_ping", _) => ("200 OK", "OK"),
        ("/version", _) => ("200 OK", r#"{"ApiVersion":"1.41","Version":"20.10.24"}"#),
        ("/containers/json", _) => ("200 OK", "[]"),
        ("/events", EventsAnswer::EndsAtOnce) => ("200 OK", ""),
        ("/events", EventsAnswer::ServerError) => (
            "500 Internal Server Error",
            r#"{"message":"the stand-in ends every stream"}"#,
        ),
        _ => ("404 Not Found", r#"{"message":"page not found"}"#),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Runs gestor against the stand-in until it has listed `n` times and
/// returns when each listing came.
fn listings(events: EventsAnswer, n: usize) -> Vec<Instant> {
    let fake = FakeDocker::start(events);
    let endpoint = fake.endpoint();
    let d = Daemon::start(&[
        "--interval",
        "0.5",
        "--dry-run",
        "--inventory",
        "events",
        "--resync-every",
        "100000",
        "--docker-host",
        endpoint.as_str(),
        "--logger-url",
        "",
    ]);
    d.wait_for(&format!("{n} listings"), Duration::from_secs(90), || {
        fake.times("/containers/json").len() >= n
    });
    // Every reconnect is a full listing, counted as a resync.
    d.wait_for(
        "the listings counted as resyncs",
        Duration::from_secs(10),
        || metric_sum(&d.metrics(), "gestor_inventory_resyncs_total") >= n as f64,
    );
    // Between reconnects nothing is followed: the cycles say so.
    d.wait_for(
        "the inventory reported stale",
        Duration::from_secs(10),
        || metric_sum(&d.metrics(), "gestor_inventory_stale") == 1.0,
    );
    assert!(
        fake.times("/events").len() >= n - 1,
        "a subscription after each listing"
    );
    fake.times("/containers/json")
}

/// The least delay before reconnect `k` (0-based) after an attempt that
/// ended at once: the backoff starts at 0.5 s and doubles, and jitter takes
/// off at most half.
fn least_delay(k: usize) -> Duration {
    Duration::from_millis(250) * (1u32 << k)
}

fn assert_backs_off(what: &str, times: &[Instant]) {
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "{what}: {} listings in {:.2} s, gaps {:?}",
        times.len(),
        (times[times.len() - 1] - times[0]).as_secs_f64(),
        gaps.iter()
            .map(|g| format!("{:.2}", g.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    for (k, gap) in gaps.iter().enumerate() {
        assert!(
            *gap >= least_delay(k),
            "{what}: reconnect {} came {gap:?} after the one before, under {:?}; gaps {gaps:?}",
            k + 1,
            least_delay(k)
        );
    }
}

#[test]
fn a_stream_that_ends_at_once_is_reconnected_with_growing_delays() {
    let times = listings(EventsAnswer::EndsAtOnce, 6);
    assert_backs_off("stream closed at once", &times);
}

#[test]
fn a_stream_that_fails_at_once_is_reconnected_with_growing_delays() {
    let times = listings(EventsAnswer::ServerError, 6);
    assert_backs_off("stream failed at once", &times);
}
