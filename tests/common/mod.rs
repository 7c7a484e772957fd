//! Helpers for integration tests that drive real Docker containers and the
//! real `gestor` binary. Every container a test creates carries a label
//! unique to that test (`gestor.scope=<scope>`), and gestor is run with
//! `--only-label` on it, so tests never see or touch anything else.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DOCKER: &str = "/usr/bin/docker";
pub const STRESS_IMAGE: &str = "gestor/stress:latest";

pub fn docker(args: &[&str]) -> String {
    let out = Command::new(DOCKER)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {DOCKER}: {e} (make test installs docker.io)"));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn unique(prefix: &str) -> String {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap();
    format!("{prefix}-{}", &uuid.trim()[..8])
}

/// Containers of one test; removed when dropped, even if the test failed.
pub struct Scope {
    pub label: String,
}

impl Scope {
    pub fn new(test: &str) -> Scope {
        docker(&["image", "inspect", "-f", "{{.Id}}", STRESS_IMAGE]);
        Scope {
            label: format!("gestor.scope={}", unique(test)),
        }
    }

    /// Starts a container of the stress image with the scope label plus `labels`.
    pub fn run(&self, name: &str, labels: &[&str], command: &str) -> String {
        self.run_with(name, labels, &[], command)
    }

    /// As `run`, with extra `docker run` options.
    pub fn run_with(&self, name: &str, labels: &[&str], options: &[&str], command: &str) -> String {
        let command: Vec<&str> = command.split_whitespace().collect();
        self.run_args(name, labels, options, &command)
    }

    /// As `run_with`, the command given argument by argument.
    pub fn run_args(
        &self,
        name: &str,
        labels: &[&str],
        options: &[&str],
        command: &[&str],
    ) -> String {
        let mut args = vec![
            "run",
            "-d",
            "--cpus",
            "0.1",
            "--name",
            name,
            "--label",
            &self.label,
        ];
        args.extend_from_slice(options);
        for l in labels {
            args.push("--label");
            args.push(l);
        }
        args.push(STRESS_IMAGE);
        args.extend_from_slice(command);
        docker(&args)
    }

    /// A managed container of `kind` as the generator makes it.
    pub fn managed(&self, kind: &str, command: &str) -> (String, String) {
        let name = unique(kind);
        let t = format!("gestor.type={kind}");
        let id = self.run(&name, &["gestor.managed=true", &t], command);
        (name, id)
    }

    /// A container's state as Docker reports it, or `None` when it is gone.
    pub fn state_of(&self, name: &str) -> Option<String> {
        let out = Command::new(DOCKER)
            .args(["inspect", "-f", "{{.State.Status}}", name])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Names of the scope's containers, running or not.
    pub fn names(&self, all: bool) -> Vec<String> {
        let filter = format!("label={}", self.label);
        let mut args = vec!["ps", "--filter", &filter, "--format", "{{.Names}}"];
        if all {
            args.push("-a");
        }
        let out = docker(&args);
        let mut v: Vec<String> = out
            .lines()
            .map(String::from)
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    }

    /// Resident memory of a container's processes (KiB), as `ps` sees it.
    pub fn rss_kib(&self, id: &str) -> u64 {
        docker(&["top", id, "-o", "pid,rss"])
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    }

    /// Waits until a container's processes hold at least `kib` KiB resident.
    pub fn wait_rss(&self, id: &str, kib: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let rss = self.rss_kib(id);
            if rss >= kib {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} holds {rss} KiB after {timeout:?}, not {kib}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn value(&self) -> &str {
        self.label.split_once('=').unwrap().1
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let filter = format!("label={}", self.label);
        if let Ok(out) = Command::new(DOCKER)
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm".to_string(), "-f".to_string()];
                args.extend(ids);
                let _ = Command::new(DOCKER).args(&args).output();
            }
        }
    }
}

/// A loopback address where nothing listens, for as long as the value lives:
/// the socket is bound (so the kernel gives the port to no one else, not even
/// as the source port of an outgoing connection) but never listens, so every
/// connection to it is refused.
pub struct DeadPort {
    _socket: socket2::Socket,
    pub port: u16,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        DeadPort {
            _socket: socket,
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Default for DeadPort {
    fn default() -> Self {
        DeadPort::new()
    }
}

/// The value of the first line of a Prometheus exposition that starts with
/// `line_prefix` (a family's name, with labels to pick one series).
pub fn metric(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// As `metric`, and the exposition in the panic when there is no such line.
pub fn metric_required(text: &str, line_prefix: &str) -> f64 {
    metric(text, line_prefix).unwrap_or_else(|| panic!("no {line_prefix} in\n{text}"))
}

/// The sum of every series whose line starts with `line_prefix` (0 when
/// there is none).
pub fn metric_sum(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn gestor_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gestor")
}

/// A running `gestor run` listening on a port the kernel picked (port 0,
/// read back from `--ready-file`); its stderr lines are collected; killed on
/// drop.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub lines: Arc<Mutex<Vec<String>>>,
    /// Reads gestor's stderr into `lines` until it ends.
    reader: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start(args: &[&str]) -> Daemon {
        Daemon::start_under(&[], args)
    }

    /// As `start`, gestor run by `wrapper` (e.g. `setpriv` with its options).
    pub fn start_under(wrapper: &[&str], args: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let mut cmd = match wrapper.split_first() {
            Some((program, options)) => {
                let mut c = Command::new(program);
                c.args(options).arg(gestor_bin());
                c
            }
            None => Command::new(gestor_bin()),
        };
        cmd.arg("run")
            .args(["--listen", "127.0.0.1:0", "--create-logger=false"])
            .arg("--ready-file")
            .arg(&ready)
            .args(args)
            .env_remove("GESTOR_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start gestor");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let port = wait_ready_file(&mut child, &ready, &lines);
        let d = Daemon {
            child,
            port,
            lines,
            reader: Some(reader),
            _dir: dir,
        };
        d.wait_for("healthz", Duration::from_secs(20), || {
            d.get("/healthz").is_some()
        });
        d
    }

    pub fn get(&self, path: &str) -> Option<String> {
        http_get(self.port, path)
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").expect("/metrics answers")
    }

    pub fn state(&self) -> serde_json::Value {
        self.get("/api/v1/state")
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    pub fn cycle(&self) -> u64 {
        self.state()["cycle"].as_u64().unwrap_or(0)
    }

    /// Waits until `n` more cycles have completed.
    pub fn wait_cycles(&self, n: u64, timeout: Duration) {
        let start = self.cycle();
        self.wait_for(&format!("{n} more cycles"), timeout, || {
            self.cycle() >= start + n
        });
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; gestor said:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Sends `signal` (e.g. 1, SIGHUP) to gestor.
    pub fn send_signal(&self, signal: i32) {
        unsafe_kill(self.child.id() as i32, signal);
    }

    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let pid = self.child.id() as i32;
        let started = Instant::now();
        unsafe_kill(pid, 15);
        let status = self.child.wait().unwrap();
        let took = started.elapsed();
        // Every line gestor wrote is in `lines` once its stderr has ended.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, took)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until gestor writes where it listens; fails at once if it exits.
pub fn wait_ready_file(child: &mut Child, ready: &Path, lines: &Arc<Mutex<Vec<String>>>) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(ready) {
            let addr: SocketAddr = text
                .trim()
                .parse()
                .expect("the ready file holds an address");
            assert_ne!(addr.port(), 0);
            return addr.port();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "gestor exited ({status}) before listening:\n{}",
                lines.lock().unwrap().join("\n")
            );
        }
        assert!(
            Instant::now() < deadline,
            "gestor did not write {} within 20 s:\n{}",
            ready.display(),
            lines.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unsafe_kill(pid: i32, sig: i32) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

/// A minimal HTTP/1.0 GET on loopback (no client crate needed).
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return None;
    }
    Some(body.to_string())
}

/// `promtool check metrics` on an exposition; returns its complaints.
pub fn promtool_check(exposition: &str) -> Result<(), String> {
    use std::io::Write;
    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("promtool (Debian's prometheus package) is installed by make test");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A stand-in log service: takes `POST /logs` batches on a loopback port the
/// kernel picked and keeps every record, for tests that read what gestor
/// shipped. Answers 200 to everything.
pub struct RecordSink {
    pub url: String,
    records: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl RecordSink {
    pub fn start() -> RecordSink {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = records.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 65536];
                    // One request per connection: the head, then Content-Length bytes.
                    let (head_end, length) = loop {
                        let n = match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..at]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (at + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if let Ok(serde_json::Value::Array(batch)) =
                        serde_json::from_slice(&buf[head_end..head_end + length])
                    {
                        sink.lock().unwrap().extend(batch);
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                    );
                });
            }
        });
        RecordSink { url, records }
    }

    /// Every record received so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.records.lock().unwrap().clone()
    }

    /// The records of one container, by id.
    pub fn of(&self, container_id: &str) -> Vec<serde_json::Value> {
        self.records()
            .into_iter()
            .filter(|r| r["container_id"] == container_id)
            .collect()
    }
}
