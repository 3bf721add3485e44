//! The test harness: runs `trail serve` as a child process in its own
//! temporary data directory on an ephemeral port, talks HTTP/1.1 to it with
//! a tiny hand-written client over `std::net::TcpStream` (so tests can send
//! raw, even invalid, bytes), runs the other `trail` subcommands, and holds
//! the small helpers the test files share (ids, times, event builders,
//! problem+json checks, file greps).
//!
//! The backend: `trail serve` runs on the embedded sqlite store unless
//! `TRAIL_TEST_BACKEND=postgres`, when every fresh data directory gets its
//! own database in the cluster at `TRAIL_TEST_DATABASE_URL` (made with
//! `psql`; its URL is kept in `DIR/test-database-url`, so a restart on the
//! same directory finds the same database) and every server on it is given
//! `--database-url` as well as `--data-dir` (which still holds the log key).
//! [`trail`] adds that `--database-url` to any command run with `--data-dir
//! DIR` of such a directory, so `trail keys ... --data-dir DIR` and `trail
//! verify --data-dir DIR` reach the same store on either backend.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_trail");

/// How long a server may take to print its address and become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variables of the binary that must not leak in from the
/// environment the tests run in.
const TRAIL_VARS: &[&str] = &[
    "TRAIL_DATA_DIR",
    "TRAIL_LISTEN",
    "TRAIL_KEY",
    "TRAIL_URL",
    "TRAIL_DATABASE_URL",
    "TRAIL_REQUEST_TIMEOUT_SECS",
    "TRAIL_LOG",
    "TRAIL_RETENTION_DAYS",
    "TRAIL_CONTENT_POLICY",
    "TRAIL_RECORD_TYPES",
];

static SERVER_COUNTER: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------

/// The file in a data directory that names its test database.
const DATABASE_URL_FILE: &str = "test-database-url";

/// True when the tests run `trail serve` on postgres
/// (`TRAIL_TEST_BACKEND=postgres`); sqlite when unset or `sqlite`.
pub fn postgres_backend() -> bool {
    match std::env::var("TRAIL_TEST_BACKEND") {
        Err(_) => false,
        Ok(value) => match value.as_str() {
            "" | "sqlite" => false,
            "postgres" => true,
            other => panic!("TRAIL_TEST_BACKEND={other:?}: expected sqlite or postgres"),
        },
    }
}

/// The superuser URL of the test cluster. Panics when
/// `TRAIL_TEST_DATABASE_URL` is not set: a test that needs postgres never
/// passes by skipping.
pub fn test_cluster_url() -> String {
    match std::env::var("TRAIL_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "TRAIL_TEST_DATABASE_URL is not set: this test needs PostgreSQL; run scripts/test, \
             which starts a throwaway cluster and sets it"
        ),
    }
}

/// `url` with its database name replaced by `name`.
pub fn url_with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("TRAIL_TEST_DATABASE_URL is not a postgres:// URL: {url}"));
    let (authority, tail) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    let query = tail.find('?').map_or("", |q| &tail[q..]);
    format!("{scheme}://{authority}/{name}{query}")
}

static DATABASE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs `sql` with `psql` on `url` (ON_ERROR_STOP, unaligned, tuples only);
/// returns (success, stdout, stderr).
pub fn psql(url: &str, sql: &str) -> (bool, String, String) {
    let output = Command::new("psql")
        .arg(url)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env_remove("PGOPTIONS")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run psql ({e}); scripts/test installs it (postgresql-client)")
        });
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Creates an empty database `trail_t_<pid>_<n>` in the test cluster;
/// returns its URL.
pub fn create_test_database() -> String {
    create_test_database_from(None)
}

/// Creates a database `trail_t_<pid>_<n>` in the test cluster, a copy of
/// database `template` when given (waiting up to 30 s for the last
/// connections to it to go); returns its URL.
pub fn create_test_database_from(template: Option<&str>) -> String {
    let cluster = test_cluster_url();
    let name = format!(
        "trail_t_{}_{}",
        std::process::id(),
        DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let sql = match template {
        Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
        None => format!("CREATE DATABASE {name}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, _, stderr) = psql(&cluster, &sql);
        if ok {
            break;
        }
        if !stderr.contains("is being accessed by other users") || Instant::now() > deadline {
            panic!("{sql} on {cluster}: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    url_with_database(&cluster, &name)
}

/// The test database of data directory `dir`, when it has one.
pub fn database_url_of(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(DATABASE_URL_FILE))
        .ok()
        .map(|url| url.trim().to_owned())
}

/// The store of a server on `dir`: on postgres, `dir`'s database (made on
/// first use and remembered in the directory); None on sqlite.
pub fn server_database_url(dir: &Path) -> Option<String> {
    if !postgres_backend() {
        return None;
    }
    if let Some(url) = database_url_of(dir) {
        return Some(url);
    }
    let url = create_test_database();
    std::fs::write(dir.join(DATABASE_URL_FILE), &url).expect("write test-database-url");
    Some(url)
}

/// A running `trail serve` process. Killed (SIGKILL) on drop.
pub struct Server {
    child: Option<Child>,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The admin key printed on a fresh data dir (None on a restart).
    pub admin_key: Option<String>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where the server's stderr (its log) goes.
    pub log_path: PathBuf,
    stdout: Arc<Mutex<String>>,
    _owned_dir: Option<TempDir>,
}

impl Server {
    /// Starts a server on a fresh temporary data directory.
    pub fn start() -> Server {
        let dir = TempDir::new().expect("temp dir");
        let mut server = Server::start_in(dir.path());
        server._owned_dir = Some(dir);
        server
    }

    /// Starts a server on a fresh temporary data directory with `extra`
    /// flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let dir = TempDir::new().expect("temp dir");
        let mut server = Server::spawn(dir.path(), false, server_database_url(dir.path()), extra);
        server._owned_dir = Some(dir);
        server
    }

    /// Starts a server on `dir` (fresh or not), with flags.
    pub fn start_in(dir: &Path) -> Server {
        Server::spawn(dir, false, server_database_url(dir), &[])
    }

    /// Starts a server on `dir` listening on `listen` (a fixed address, so
    /// a client can be pointed at it before it runs and across restarts).
    pub fn start_in_at(dir: &Path, listen: SocketAddr) -> Server {
        Server::spawn_at(dir, false, server_database_url(dir), &[], listen, &[])
    }

    /// Starts a server on `dir`, configured through `TRAIL_DATA_DIR` and
    /// `TRAIL_LISTEN` (and `TRAIL_DATABASE_URL` on postgres) instead of
    /// flags.
    pub fn start_in_with_env(dir: &Path) -> Server {
        Server::spawn(dir, true, server_database_url(dir), &[])
    }

    /// Starts a server with `--data-dir DIR --database-url URL` and `extra`
    /// flags, whatever the test backend; `dir` remembers `url` (so [`trail`]
    /// gives `--data-dir DIR` commands the same database).
    pub fn start_on_database(dir: &Path, url: &str, extra: &[&str]) -> Server {
        std::fs::write(dir.join(DATABASE_URL_FILE), url).expect("write test-database-url");
        Server::spawn(dir, false, Some(url.to_owned()), extra)
    }

    fn spawn(dir: &Path, use_env: bool, database_url: Option<String>, extra: &[&str]) -> Server {
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("address");
        Server::spawn_at(dir, use_env, database_url, extra, any_port, &[])
    }

    /// Starts a server on `dir` whose clock runs `offset` ahead of the real
    /// one (libfaketime, which scripts/test installs; e.g. `"+2d"`).
    pub fn start_in_future(dir: &Path, offset: &str) -> Server {
        let library = std::fs::read_dir("/usr/lib")
            .expect("/usr/lib")
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path().join("faketime/libfaketimeMT.so.1"))
            .find(|path| path.exists())
            .expect("libfaketime is not installed (scripts/test installs it: apt-get install libfaketime)");
        let any_port: SocketAddr = "127.0.0.1:0".parse().expect("address");
        Server::spawn_at(
            dir,
            false,
            server_database_url(dir),
            &[],
            any_port,
            &[
                ("LD_PRELOAD", library.to_string_lossy().into_owned()),
                ("FAKETIME", offset.to_owned()),
            ],
        )
    }

    fn spawn_at(
        dir: &Path,
        use_env: bool,
        database_url: Option<String>,
        extra: &[&str],
        listen: SocketAddr,
        env: &[(&str, String)],
    ) -> Server {
        let listen = listen.to_string();
        let n = SERVER_COUNTER.fetch_add(1, Ordering::Relaxed);
        let log_path = dir.join(format!("serve-{}-{n}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new(BIN);
        command.arg("serve");
        for var in TRAIL_VARS {
            command.env_remove(var);
        }
        command.args(extra);
        if use_env {
            command
                .env("TRAIL_DATA_DIR", dir)
                .env("TRAIL_LISTEN", &listen);
            if let Some(url) = &database_url {
                command.env("TRAIL_DATABASE_URL", url);
            }
        } else {
            command
                .arg("--data-dir")
                .arg(dir)
                .arg("--listen")
                .arg(&listen);
            if let Some(url) = &database_url {
                command.arg("--database-url").arg(url);
            }
        }
        command.envs(env.iter().map(|(name, value)| (name, value)));
        command
            .env("TRAIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = command.spawn().expect("spawn trail serve");
        let stdout = child.stdout.take().expect("stdout pipe");
        let seen = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        {
            let seen = Arc::clone(&seen);
            // Keep draining stdout for the whole life of the process, so a
            // full pipe can never block it.
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            seen.lock().unwrap().push_str(&line);
                            let _ = lines_tx.send(line.trim_end().to_owned());
                        }
                    }
                }
            });
        }
        let deadline = Instant::now() + START_TIMEOUT;
        let mut admin_key = None;
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) =
                        line.strip_prefix("admin key for tenant default (shown once, keep it): ")
                    {
                        admin_key = Some(rest.trim().to_owned());
                    } else if let Some(rest) = line.strip_prefix("trail listening on ") {
                        break rest.trim().to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "trail serve did not print its address; stdout:\n{}\nlog:\n{}",
                        seen.lock().unwrap(),
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
            }
        };
        let addr: SocketAddr = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("listening line has no http:// URL: {url}"))
            .parse()
            .unwrap_or_else(|e| panic!("bad address in {url}: {e}"));
        if let Some(key) = &admin_key {
            assert_key_format(key);
        }
        let server = Server {
            child: Some(child),
            addr,
            url,
            admin_key,
            data_dir: dir.to_owned(),
            log_path,
            stdout: seen,
            _owned_dir: None,
        };
        server.wait_ready(deadline);
        server
    }

    fn wait_ready(&self, deadline: Instant) {
        loop {
            if let Ok(response) = request(self.addr, "GET", "/readyz", &[], None) {
                if response.status == 200 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("server never became ready; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The admin key of a fresh server.
    pub fn admin_key(&self) -> String {
        self.admin_key
            .clone()
            .expect("this server was not started on a fresh data dir")
    }

    /// A client with the admin key.
    pub fn admin(&self) -> Client {
        self.client(&self.admin_key())
    }

    /// A client with `key`.
    pub fn client(&self, key: &str) -> Client {
        Client {
            addr: self.addr,
            key: Some(key.to_owned()),
        }
    }

    /// A client without any key.
    pub fn anonymous(&self) -> Client {
        Client {
            addr: self.addr,
            key: None,
        }
    }

    /// Everything the server printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The server's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Creates a key with `trail keys create --data-dir` (while serving).
    pub fn create_key(&self, tenant: &str, role: &str, user: Option<&str>) -> String {
        create_key(&self.data_dir, tenant, role, user)
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("wait");
        }
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let child = self.child.as_ref().expect("server already stopped");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits (at most a minute) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server already stopped");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server did not exit within 60 s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits (at most a minute) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal_term();
        self.wait_exit()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Panics unless `key` reads `trail_<16 hex>_<64 hex>`.
pub fn assert_key_format(key: &str) {
    let parts: Vec<&str> = key.split('_').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    assert!(
        parts.len() == 3 && parts[0] == "trail" && hex(parts[1], 16) && hex(parts[2], 64),
        "not a trail key: {key:?}"
    );
}

/// The key id (16 hex after `trail_`) of a key.
pub fn key_id(key: &str) -> String {
    key.split('_').nth(1).expect("key id").to_owned()
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The (de-chunked) body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON; panics with the body text when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("answer {} is not JSON ({e}): {}", self.status, self.text()))
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Panics unless the status is `status`; returns the JSON body.
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected {status}, got {}: {}",
            self.status,
            self.text()
        );
        self.json()
    }
}

/// Sends one HTTP/1.1 request (Connection: close) and reads the answer.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut data = head.into_bytes();
    if let Some(body) = body {
        data.extend_from_slice(body);
    }
    exchange(addr, data)
}

/// Writes `data` (a whole request, as raw bytes) on a new connection and
/// reads the answer. Large requests are written from a second thread while
/// the answer is read, so a server that answers early (413) and stops
/// reading is still heard.
pub fn exchange(addr: SocketAddr, data: Vec<u8>) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(180)))?;
    stream.set_write_timeout(Some(Duration::from_secs(180)))?;
    stream.set_nodelay(true)?;
    let writer = if data.len() > 64 * 1024 {
        let mut out = stream.try_clone()?;
        Some(std::thread::spawn(move || {
            // The server may answer and close before reading it all.
            let _ = out.write_all(&data);
            let _ = out.flush();
        }))
    } else {
        stream.write_all(&data)?;
        None
    };
    let mut raw = Vec::new();
    let read = read_until_complete(&mut stream, &mut raw);
    let _ = stream.shutdown(Shutdown::Both);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    match parse_response(&raw, read.is_ok()) {
        Some(response) => Ok(response),
        None => match read {
            Err(error) => Err(error),
            Ok(()) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "incomplete HTTP answer: {:?}",
                    String::from_utf8_lossy(&raw[..raw.len().min(500)])
                ),
            )),
        },
    }
}

/// Reads one answer from a connection the caller wrote a request on.
pub fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    let read = read_until_complete(stream, &mut raw);
    match parse_response(&raw, read.is_ok()) {
        Some(response) => Ok(response),
        None => Err(read.err().unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete HTTP answer")
        })),
    }
}

/// Reads until EOF or until a complete answer is in `raw`.
fn read_until_complete(stream: &mut TcpStream, raw: &mut Vec<u8>) -> std::io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
        if parse_response(raw, false).is_some() {
            return Ok(());
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a complete answer; None while incomplete (`at_eof`: the server
/// closed the connection, which ends a body sent without a length).
fn parse_response(raw: &[u8], at_eof: bool) -> Option<Response> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().ok()?;
        if rest.len() < length {
            return None;
        }
        rest[..length].to_vec()
    } else if at_eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        if rest.len() < size + 2 {
            return None;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Percent-encodes a query string.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `path?query`.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query_string(pairs))
    }
}

/// A server address and a key (or none).
#[derive(Debug, Clone)]
pub struct Client {
    /// Server address.
    pub addr: SocketAddr,
    /// Bearer key.
    pub key: Option<String>,
}

impl Client {
    /// Sends a request with this client's key; panics on a transport error.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Response {
        self.try_send(method, path, content_type, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Sends a request with this client's key.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> std::io::Result<Response> {
        let auth = self.key.as_ref().map(|k| format!("Bearer {k}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        if let Some(content_type) = content_type {
            headers.push(("Content-Type", content_type));
        }
        request(self.addr, method, path, &headers, body)
    }

    /// GET.
    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, None, None)
    }

    /// GET with query parameters.
    pub fn get_q(&self, path: &str, pairs: &[(&str, &str)]) -> Response {
        self.get(&with_query(path, pairs))
    }

    /// POST a JSON value.
    pub fn post(&self, path: &str, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send("POST", path, Some("application/json"), Some(&bytes))
    }

    /// POST raw bytes as `application/json`.
    pub fn post_raw(&self, path: &str, body: &[u8]) -> Response {
        self.send("POST", path, Some("application/json"), Some(body))
    }

    /// PUT a JSON value.
    pub fn put(&self, path: &str, body: &Value) -> Response {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send("PUT", path, Some("application/json"), Some(&bytes))
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, None, None)
    }

    /// POST /v1/events with a JSON value; panics unless 200; returns the
    /// `accepted` array.
    pub fn ingest(&self, body: &Value) -> Vec<Value> {
        let answer = self.post("/v1/events", body).expect(200);
        answer["accepted"]
            .as_array()
            .unwrap_or_else(|| panic!("no accepted array: {answer}"))
            .clone()
    }

    /// Every record matching `filters`, paging with the cursor.
    pub fn list_all(&self, filters: &[(&str, &str)], limit: u32, asc: bool) -> Vec<Value> {
        let limit = limit.to_string();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100_000 {
            let mut pairs: Vec<(&str, &str)> = filters.to_vec();
            pairs.push(("limit", &limit));
            if asc {
                pairs.push(("order", "asc"));
            }
            if let Some(cursor) = &cursor {
                pairs.push(("cursor", cursor));
            }
            let answer = self.get_q("/v1/events", &pairs).expect(200);
            let events = answer["events"].as_array().expect("events array");
            assert!(
                events.len() <= limit.parse::<usize>().unwrap(),
                "page larger than limit"
            );
            out.extend(events.iter().cloned());
            match &answer["next_cursor"] {
                Value::Null => return out,
                Value::String(next) => {
                    assert!(
                        !events.is_empty(),
                        "an empty page must not carry a cursor: {answer}"
                    );
                    cursor = Some(next.clone());
                }
                other => panic!("next_cursor must be a string or null, got {other}"),
            }
        }
        panic!("pagination did not end");
    }

    /// `total` of `GET /v1/events?count=true` with `filters`.
    pub fn total(&self, filters: &[(&str, &str)]) -> u64 {
        let mut pairs = filters.to_vec();
        pairs.push(("count", "true"));
        pairs.push(("limit", "1"));
        let answer = self.get_q("/v1/events", &pairs).expect(200);
        answer["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("no total in {answer}"))
    }

    /// [`Client::total`] without trail's own events (transport `system`:
    /// the `events.read` / `events.export` records of reads, sweeps,
    /// erasures).
    pub fn total_recorded(&self, filters: &[(&str, &str)]) -> u64 {
        let mut system = filters.to_vec();
        system.push(("transport", "system"));
        self.total(filters) - self.total(&system)
    }

    /// `GET /v1/healthz` answers 200.
    pub fn assert_healthy(&self) {
        let response = self.get("/healthz");
        assert_eq!(response.status, 200, "healthz: {}", response.text());
    }
}

/// Checks a problem+json answer: its status, its members, and that
/// `errors` has an entry whose field satisfies `field_ok`. Returns the body.
pub fn assert_problem_where(
    response: &Response,
    status: u16,
    what: &str,
    field_ok: impl Fn(&str) -> bool,
) -> Value {
    assert_eq!(
        response.status,
        status,
        "{what}: expected {status}, got {}: {}",
        response.status,
        response.text()
    );
    let content_type = response.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: content type {content_type:?}"
    );
    let body = response.json();
    assert!(body["type"].is_string(), "{what}: no type in {body}");
    assert!(body["title"].is_string(), "{what}: no title in {body}");
    assert!(body["detail"].is_string(), "{what}: no detail in {body}");
    assert_eq!(
        body["status"],
        json!(status),
        "{what}: status member in {body}"
    );
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no errors array in {body}"));
    assert!(
        errors
            .iter()
            .any(|e| { e["message"].is_string() && e["field"].as_str().is_some_and(&field_ok) }),
        "{what}: no error entry with the expected field in {body}"
    );
    body
}

/// [`assert_problem_where`] with an exact field name.
pub fn assert_problem(response: &Response, status: u16, field: &str) -> Value {
    assert_problem_where(response, status, field, |f| f == field)
}

/// Checks a problem+json answer without field errors (401, 403, 404, 409).
pub fn assert_plain_problem(response: &Response, status: u16, what: &str) -> Value {
    assert_eq!(
        response.status,
        status,
        "{what}: expected {status}, got {}: {}",
        response.status,
        response.text()
    );
    let content_type = response.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: content type {content_type:?}"
    );
    let body = response.json();
    assert_eq!(body["status"], json!(status), "{what}: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{what}: {body}"
    );
    body
}

// ---------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------

/// A finished CLI run.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Panics unless the exit code is 0; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        &self.stdout
    }
}

/// Runs `trail ARGS` (no stdin).
pub fn trail(args: &[&str]) -> Run {
    trail_with_stdin(args, None)
}

/// `args` plus `--database-url URL` when they name a `--data-dir` that has
/// a test database and no `--database-url` of their own.
fn with_database_url(args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    if args.contains(&"--database-url") {
        return out;
    }
    let url = args
        .windows(2)
        .find(|pair| pair[0] == "--data-dir")
        .and_then(|pair| database_url_of(Path::new(pair[1])));
    if let Some(url) = url {
        out.extend(["--database-url".to_owned(), url]);
    }
    out
}

/// Runs `trail ARGS` with `stdin` (closed when None); at most two minutes.
/// With `--data-dir DIR` of a directory that has a test database, the
/// command is given `--database-url` too (see the module comment).
pub fn trail_with_stdin(args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = Command::new(BIN);
    command.args(with_database_url(args));
    for var in TRAIL_VARS {
        command.env_remove(var);
    }
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn trail");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let text = text.to_owned();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("trail {args:?} did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}

/// `trail keys create --data-dir DIR --tenant T --role R [--user U]`.
pub fn create_key(dir: &Path, tenant: &str, role: &str, user: Option<&str>) -> String {
    let dir = dir.to_str().expect("utf-8 path");
    let mut args = vec![
        "keys",
        "create",
        "--data-dir",
        dir,
        "--tenant",
        tenant,
        "--role",
        role,
    ];
    if let Some(user) = user {
        args.extend(["--user", user]);
    }
    let run = trail(&args);
    let key = run.ok().trim().to_owned();
    assert_key_format(&key);
    key
}

// ---------------------------------------------------------------------------
// Ids, times, events
// ---------------------------------------------------------------------------

static UUID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A random 64-bit number (std's per-instance random hash keys).
pub fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(UUID_COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// A fresh, unique (version 4 shaped) UUID.
pub fn new_uuid() -> String {
    let a = random_u64();
    let b = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// A unique marker string, for greps.
pub fn marker(prefix: &str) -> String {
    format!("{prefix}{:016x}{:016x}", random_u64(), random_u64())
}

/// A minimal valid event with a fresh id.
pub fn event(event_type: &str, name: &str) -> Value {
    json!({"id": new_uuid(), "type": event_type, "name": name})
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of midnight UTC of a calendar day.
pub fn days_from_civil_secs(y: i64, m: i64, d: i64) -> i64 {
    days_from_civil(y, m, d) * 86_400
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Unix seconds as RFC 3339, with `offset_minutes` east of UTC.
pub fn rfc3339(secs: i64, offset_minutes: i64) -> String {
    let local = secs + offset_minutes * 60;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    let time = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if offset_minutes == 0 {
        format!("{time}Z")
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let o = offset_minutes.abs();
        format!("{time}{sign}{:02}:{:02}", o / 60, o % 60)
    }
}

/// Unix microseconds as RFC 3339 UTC (a fraction only when non-zero).
pub fn rfc3339_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let text = rfc3339(secs, 0);
    if frac == 0 {
        text
    } else {
        format!("{}.{frac:06}Z", &text[..text.len() - 1])
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to Unix microseconds.
pub fn parse_rfc3339(text: &str) -> i64 {
    let bad = || panic!("not an RFC 3339 time: {text:?}");
    let b = text.as_bytes();
    if b.len() < 20 {
        bad();
    }
    let num = |range: std::ops::Range<usize>| -> i64 {
        text.get(range)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(bad)
    };
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, s) = (num(11..13), num(14..16), num(17..19));
    let mut i = 19;
    let mut micros = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let mut frac = text[start..i].to_owned();
        frac.truncate(6);
        while frac.len() < 6 {
            frac.push('0');
        }
        micros = frac.parse().unwrap_or_else(|_| bad());
    }
    let offset = match &text[i..] {
        "Z" | "z" => 0,
        rest if rest.len() == 6 => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (num(i + 1..i + 3) * 3600 + num(i + 4..i + 6) * 60)
        }
        _ => bad(),
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    secs * 1_000_000 + micros
}

/// Nearest-rank percentile of sorted values.
pub fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// SHA-256 of `bytes` as lowercase hex, computed by `sha256sum`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_owned()
}

/// True when `needle` occurs anywhere in the store of the server on `dir`:
/// on sqlite, in the raw bytes of its database files (`trail.db`,
/// `trail.db-wal`, `trail.db-shm`, ...); on postgres, in a `pg_dump
/// --data-only` of its database, as text or as the hex of a `bytea` value.
pub fn store_contains(dir: &Path, needle: &[u8]) -> bool {
    if let Some(url) = database_url_of(dir) {
        let output = Command::new("pg_dump")
            .args(["--data-only", "--no-owner", "--dbname", &url])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_dump ({e}); scripts/test installs it"));
        assert!(
            output.status.success(),
            "pg_dump {url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            find(&output.stdout, b"COPY public.records").is_some(),
            "pg_dump of {url} holds no records table"
        );
        let hex = hex::encode(needle);
        return find(&output.stdout, needle).is_some()
            || find(&output.stdout, hex.as_bytes()).is_some();
    }
    let files = database_files(dir);
    assert!(!files.is_empty(), "no trail.db* files in {}", dir.display());
    files.iter().any(|path| {
        let bytes = std::fs::read(path).unwrap_or_default();
        find(&bytes, needle).is_some()
    })
}

/// The database files of `dir`.
pub fn database_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read data dir")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("trail.db"))
        })
        .collect();
    files.sort();
    files
}

/// The number of a Prometheus sample line `name value`.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (n, v) = line.split_once(' ')?;
            (n == name).then(|| v.trim().parse::<f64>().ok())?
        })
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Collects failed checks so a test reports all of them at once.
#[derive(Default)]
pub struct Failures(Vec<String>);

impl Failures {
    /// Records `message` unless `ok`.
    pub fn check(&mut self, ok: bool, message: impl Into<String>) {
        if !ok {
            self.0.push(message.into());
        }
    }

    /// Panics listing every failed check.
    pub fn finish(self, what: &str) {
        assert!(
            self.0.is_empty(),
            "{what}: {} failed checks:\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

/// Waits until `check` holds, at most `timeout`.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
