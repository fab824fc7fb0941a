//! `strata-verify metrics`: per-GPU temperature, power, memory and
//! utilisation from NVML, served at `GET /metrics` in the Prometheus text
//! exposition format (version 0.0.4).
//!
//! The server is a few dozen lines of `std::net`: one thread per
//! connection, at most [`ServerConfig::max_connections`] at a time, a
//! request head of at most [`ServerConfig::max_request_bytes`], read and
//! write timeouts, `Connection: close`. Nothing a client sends is used
//! beyond the method and the path. Without a GPU (no NVML, or NVML cannot
//! read the GPUs) `/metrics` still answers, with `strata_gpu_up 0`, and
//! NVML is tried again at the next scrape.

use crate::ffi::nvml::{GpuReading, Nvml};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The port the start script and the docs use.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9400";

/// One scrape's worth of readings.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The GPUs, or why they could not be read.
    pub gpus: Result<Vec<GpuReading>, String>,
    /// Driver version, when NVML gave it.
    pub driver_version: Option<String>,
    /// How long reading took, seconds.
    pub seconds: f64,
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A number as the exposition format writes it (integers without a
/// fraction, no exponent for ordinary values).
fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The exposition text for `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let family = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
    };
    family(
        &mut out,
        "strata_gpu_up",
        "1 when NVML answered and every GPU was read, 0 otherwise.",
    );
    match &s.gpus {
        Err(why) => {
            // A comment: scrapers ignore it, a person reading the page sees why.
            let _ = writeln!(out, "# NVML unavailable: {}", why.replace('\n', " "));
            out.push_str("strata_gpu_up 0\n");
        }
        Ok(_) => out.push_str("strata_gpu_up 1\n"),
    }
    family(
        &mut out,
        "strata_gpu_scrape_duration_seconds",
        "Time taken to read the GPUs through NVML.",
    );
    let _ = writeln!(
        out,
        "strata_gpu_scrape_duration_seconds {}",
        number((s.seconds * 1e6).round() / 1e6)
    );
    let Ok(gpus) = &s.gpus else {
        return out;
    };
    family(&mut out, "strata_gpu_count", "GPUs NVML sees.");
    let _ = writeln!(out, "strata_gpu_count {}", gpus.len());
    let labels = |g: &GpuReading| {
        format!(
            "gpu=\"{}\",uuid=\"{}\",name=\"{}\"",
            g.index,
            escape_label(&g.uuid),
            escape_label(&g.name)
        )
    };
    family(
        &mut out,
        "strata_gpu_info",
        "GPU identity and driver version; the value is always 1.",
    );
    for g in gpus {
        let _ = writeln!(
            out,
            "strata_gpu_info{{{},driver=\"{}\"}} 1",
            labels(g),
            escape_label(s.driver_version.as_deref().unwrap_or(""))
        );
    }
    type Get = fn(&GpuReading) -> Option<f64>;
    let series: [(&str, &str, Get); 7] = [
        (
            "strata_gpu_temperature_celsius",
            "GPU core temperature.",
            |g| g.temperature_c.map(f64::from),
        ),
        ("strata_gpu_power_watts", "Board power draw.", |g| g.power_w),
        (
            "strata_gpu_power_limit_watts",
            "Enforced board power limit.",
            |g| g.power_limit_w,
        ),
        (
            "strata_gpu_memory_used_bytes",
            "Device memory in use.",
            |g| g.memory_used_bytes.map(|v| v as f64),
        ),
        (
            "strata_gpu_memory_total_bytes",
            "Device memory in all.",
            |g| g.memory_total_bytes.map(|v| v as f64),
        ),
        (
            "strata_gpu_utilization_ratio",
            "Share of the last sample period in which a kernel ran (0 to 1).",
            |g| g.utilization,
        ),
        (
            "strata_gpu_memory_utilization_ratio",
            "Share of the last sample period in which device memory was read or written (0 to 1).",
            |g| g.memory_utilization,
        ),
    ];
    for (name, help, get) in series {
        let values: Vec<(String, f64)> = gpus
            .iter()
            .filter_map(|g| get(g).map(|v| (labels(g), v)))
            .collect();
        if values.is_empty() {
            continue;
        }
        family(&mut out, name, help);
        for (l, v) in values {
            let _ = writeln!(out, "{name}{{{l}}} {}", number(v));
        }
    }
    out
}

/// Reads the GPUs through NVML, opening it on first use and again after it
/// failed (a driver that appears later, a GPU that came back).
#[derive(Default)]
pub struct NvmlSource {
    nvml: Mutex<Option<Nvml>>,
}

/// Where NVML is looked for: the loader first (the file the container
/// runtime injects is `libnvidia-ml.so.1`), then the injection directories.
fn nvml_candidates() -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("libnvidia-ml.so.1")];
    v.extend(
        crate::discover::LIBCUDA_DIRS
            .iter()
            .map(|d| Path::new(d).join("libnvidia-ml.so.1"))
            .filter(|p| p.exists()),
    );
    v
}

impl NvmlSource {
    /// Opens NVML now if it can (so the start-up line can say so).
    pub fn open(&self) -> Result<(), String> {
        let mut slot = self.nvml.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Ok(());
        }
        let mut errors = Vec::new();
        for c in nvml_candidates() {
            match Nvml::open(&c) {
                Ok(n) => {
                    *slot = Some(n);
                    return Ok(());
                }
                Err(e) => errors.push(e),
            }
        }
        Err(format!(
            "{} (NVML comes with the driver: start the container with GPU access and NVIDIA_DRIVER_CAPABILITIES including utility)",
            errors.first().cloned().unwrap_or_default()
        ))
    }

    /// One scrape.
    pub fn snapshot(&self) -> Snapshot {
        let t = Instant::now();
        let (gpus, driver_version) = match self.open() {
            Err(e) => (Err(e), None),
            Ok(()) => {
                let mut slot = self.nvml.lock().unwrap_or_else(|p| p.into_inner());
                match slot.as_ref() {
                    None => (Err("NVML is not open".to_string()), None),
                    Some(n) => {
                        let driver = n.driver_version();
                        let r = n.read_all();
                        if r.is_err() {
                            // Start afresh next time.
                            *slot = None;
                        }
                        (r, driver)
                    }
                }
            }
        };
        Snapshot {
            gpus,
            driver_version,
            seconds: t.elapsed().as_secs_f64(),
        }
    }
}

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Largest request head read (request line and headers).
    pub max_request_bytes: usize,
    /// Read and write timeout per connection.
    pub timeout: Duration,
    /// Connections served at once; more are answered 503.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_request_bytes: 8 * 1024,
            timeout: Duration::from_secs(10),
            max_connections: 16,
        }
    }
}

/// A request head that could not be served, as an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// 400: not an HTTP request line.
    BadRequest,
    /// 405: a method other than GET and HEAD.
    MethodNotAllowed,
    /// 431: the head is longer than allowed.
    TooLarge,
}

/// Method and path (query dropped) from a complete request head.
pub fn parse_request(head: &[u8]) -> Result<(bool, String), HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::BadRequest)?;
    let line = text.lines().next().ok_or(HttpError::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(HttpError::BadRequest);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(HttpError::MethodNotAllowed),
    };
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    Ok((head_only, path))
}

/// Reads a request head (up to the blank line), at most `limit` bytes.
fn read_head(stream: &mut TcpStream, limit: usize) -> Result<Vec<u8>, Option<HttpError>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(None),
            Ok(n) => n,
            // Timeout or reset: nothing to answer.
            Err(_) => return Err(None),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end + 4);
            return Ok(buf);
        }
        if buf.len() > limit {
            return Err(Some(HttpError::TooLarge));
        }
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    extra: &str,
    body: &str,
    head_only: bool,
) -> io::Result<()> {
    let mut msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    if !head_only {
        msg.push_str(body);
    }
    stream.write_all(msg.as_bytes())?;
    stream.flush()
}

/// Serves one connection.
pub fn handle(mut stream: TcpStream, cfg: &ServerConfig, scrape: &dyn Fn() -> String) {
    let _ = stream.set_read_timeout(Some(cfg.timeout));
    let _ = stream.set_write_timeout(Some(cfg.timeout));
    const TEXT: &str = "text/plain; charset=utf-8";
    let r = match read_head(&mut stream, cfg.max_request_bytes) {
        Err(None) => return,
        Err(Some(_)) => respond(
            &mut stream,
            "431 Request Header Fields Too Large",
            TEXT,
            "",
            "request head too large\n",
            false,
        ),
        Ok(head) => match parse_request(&head) {
            Ok((head_only, path)) if path == "/metrics" => respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                "",
                &scrape(),
                head_only,
            ),
            Ok((head_only, path)) if path == "/" => respond(
                &mut stream,
                "200 OK",
                TEXT,
                "",
                "strata-verify GPU metrics: GET /metrics\n",
                head_only,
            ),
            Ok((head_only, _)) => respond(
                &mut stream,
                "404 Not Found",
                TEXT,
                "",
                "not found: try /metrics\n",
                head_only,
            ),
            Err(HttpError::MethodNotAllowed) => respond(
                &mut stream,
                "405 Method Not Allowed",
                TEXT,
                "Allow: GET, HEAD\r\n",
                "only GET and HEAD\n",
                false,
            ),
            Err(_) => respond(
                &mut stream,
                "400 Bad Request",
                TEXT,
                "",
                "bad request\n",
                false,
            ),
        },
    };
    let _ = r;
}

/// Accepts connections forever, one thread each, at most
/// `cfg.max_connections` at a time. Returns only if the listener fails for
/// good (after repeated errors); transient errors (too many open files) are
/// waited out.
pub fn serve(
    listener: TcpListener,
    cfg: ServerConfig,
    scrape: Arc<dyn Fn() -> String + Send + Sync>,
) -> io::Error {
    let active = Arc::new(AtomicUsize::new(0));
    let mut failures = 0u32;
    loop {
        let stream = match listener.accept() {
            Ok((s, _)) => {
                failures = 0;
                s
            }
            Err(e) => {
                failures += 1;
                if failures > 1000 {
                    return e;
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= cfg.max_connections {
            active.fetch_sub(1, Ordering::SeqCst);
            let mut s = stream;
            let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = respond(
                &mut s,
                "503 Service Unavailable",
                "text/plain; charset=utf-8",
                "Retry-After: 1\r\n",
                "busy\n",
                false,
            );
            continue;
        }
        let scrape = Arc::clone(&scrape);
        let active_c = Arc::clone(&active);
        let spawned = std::thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || {
                let _ = crate::driver::contained(|| handle(stream, &cfg, &*scrape));
                active_c.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100(index: u32) -> GpuReading {
        GpuReading {
            index,
            uuid: format!("GPU-6a0e1f2c-0000-0000-0000-00000000000{index}"),
            name: "NVIDIA H100 80GB HBM3".into(),
            temperature_c: Some(34),
            power_w: Some(71.25),
            power_limit_w: Some(700.0),
            memory_used_bytes: Some(1 << 20),
            memory_total_bytes: Some(85_520_809_984),
            utilization: Some(0.0),
            memory_utilization: Some(0.03),
        }
    }

    #[test]
    fn renders_every_gpu_with_its_labels() {
        let s = Snapshot {
            gpus: Ok(vec![h100(0), h100(1)]),
            driver_version: Some("580.159.04".into()),
            seconds: 0.0012345,
        };
        let text = render(&s);
        assert!(text.starts_with("# HELP strata_gpu_up "), "{text}");
        assert!(text.contains("\n# TYPE strata_gpu_up gauge\nstrata_gpu_up 1\n"));
        assert!(
            text.contains("strata_gpu_scrape_duration_seconds 0.001235\n"),
            "{text}"
        );
        assert!(text.contains("strata_gpu_count 2\n"));
        assert!(text.contains("strata_gpu_info{gpu=\"1\",uuid=\"GPU-6a0e1f2c-0000-0000-0000-000000000001\",name=\"NVIDIA H100 80GB HBM3\",driver=\"580.159.04\"} 1\n"), "{text}");
        let l0 = "gpu=\"0\",uuid=\"GPU-6a0e1f2c-0000-0000-0000-000000000000\",name=\"NVIDIA H100 80GB HBM3\"";
        for line in [
            format!("strata_gpu_temperature_celsius{{{l0}}} 34"),
            format!("strata_gpu_power_watts{{{l0}}} 71.25"),
            format!("strata_gpu_power_limit_watts{{{l0}}} 700"),
            format!("strata_gpu_memory_used_bytes{{{l0}}} 1048576"),
            format!("strata_gpu_memory_total_bytes{{{l0}}} 85520809984"),
            format!("strata_gpu_utilization_ratio{{{l0}}} 0"),
            format!("strata_gpu_memory_utilization_ratio{{{l0}}} 0.03"),
        ] {
            assert!(
                text.contains(&format!("{line}\n")),
                "missing {line} in\n{text}"
            );
        }
        // One HELP/TYPE pair per family, every sample line after its pair.
        assert_eq!(
            text.matches("# TYPE strata_gpu_power_watts gauge").count(),
            1
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let type_line = format!("# TYPE {name} gauge");
            let at = text.find(&format!("\n{line}\n")).unwrap();
            assert!(text[..at].contains(&type_line), "{line} before its TYPE");
        }
    }

    #[test]
    fn a_missing_reading_leaves_out_that_line_only() {
        let mut g = h100(0);
        g.power_w = None;
        let text = render(&Snapshot {
            gpus: Ok(vec![g]),
            driver_version: None,
            seconds: 0.0,
        });
        assert!(!text.contains("strata_gpu_power_watts"), "{text}");
        assert!(text.contains("strata_gpu_temperature_celsius{"));
        assert!(text.contains("driver=\"\"} 1"));
    }

    #[test]
    fn no_gpu_is_up_zero_with_the_reason() {
        let text = render(&Snapshot {
            gpus: Err("libnvidia-ml.so.1: cannot open shared object file\nsecond line".into()),
            driver_version: None,
            seconds: 0.0,
        });
        assert_eq!(
            text,
            "# HELP strata_gpu_up 1 when NVML answered and every GPU was read, 0 otherwise.\n\
             # TYPE strata_gpu_up gauge\n\
             # NVML unavailable: libnvidia-ml.so.1: cannot open shared object file second line\n\
             strata_gpu_up 0\n\
             # HELP strata_gpu_scrape_duration_seconds Time taken to read the GPUs through NVML.\n\
             # TYPE strata_gpu_scrape_duration_seconds gauge\n\
             strata_gpu_scrape_duration_seconds 0\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        let mut g = h100(0);
        g.name = "Odd \"GPU\"\n".into();
        let text = render(&Snapshot {
            gpus: Ok(vec![g]),
            driver_version: None,
            seconds: 0.0,
        });
        assert!(text.contains(r#"name="Odd \"GPU\"\n""#), "{text}");
        assert_eq!(text.lines().filter(|l| l.contains("Odd")).count(), 8);
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok((false, "/metrics".to_string()))
        );
        assert_eq!(
            parse_request(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Ok((true, "/metrics".to_string()))
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(HttpError::MethodNotAllowed)
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics SPDY/3\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert_eq!(parse_request(bad), Err(HttpError::BadRequest), "{bad:?}");
        }
    }

    fn server(cfg: ServerConfig) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let scrape: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(|| {
            render(&Snapshot {
                gpus: Err("no GPU in this test".into()),
                driver_version: None,
                seconds: 0.0,
            })
        });
        std::thread::spawn(move || serve(listener, cfg, scrape));
        addr
    }

    fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn the_server_answers_and_bounds_what_it_reads() {
        let cfg = ServerConfig {
            max_request_bytes: 512,
            timeout: Duration::from_millis(300),
            max_connections: 4,
        };
        let addr = server(cfg);
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(
            ok.ends_with("strata_gpu_scrape_duration_seconds 0\n"),
            "{ok}"
        );
        assert!(ok.contains("\r\n\r\n# HELP strata_gpu_up"));
        let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        assert!(exchange(addr, b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405 ") && post.contains("Allow: GET, HEAD\r\n"));
        assert!(exchange(addr, b"hello\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(4096));
        assert!(exchange(addr, big.as_bytes()).starts_with("HTTP/1.1 431 "));
        // A client that never finishes its request is dropped after the
        // timeout, and the server goes on answering others.
        let t = Instant::now();
        let silent = exchange(addr, b"GET /metrics HTTP/1.1\r\n");
        assert_eq!(silent, "");
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
        assert!(exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 "));
    }

    #[test]
    fn too_many_connections_get_503_not_a_hang() {
        let cfg = ServerConfig {
            max_request_bytes: 512,
            timeout: Duration::from_secs(2),
            max_connections: 2,
        };
        let addr = server(cfg);
        // Two idle connections hold both slots.
        let _a = TcpStream::connect(addr).unwrap();
        let _b = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let busy = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
        drop((_a, _b));
    }
}
