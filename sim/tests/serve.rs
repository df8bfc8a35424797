//! `maelstrom-sim serve` end to end. One short run of the flood fixture
//! under partitions makes a real store (its perf plots included); a second,
//! older run directory without results stands for an aborted run. The
//! server is started on an ephemeral port and its pages are checked over
//! plain HTTP; then headless Chromium loads a run page and every plot on it
//! must have rendered (a skip reason is printed when Chromium is absent).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

const SIM: &str = env!("CARGO_BIN_EXE_maelstrom-sim");
const FLOOD: &str = env!("CARGO_BIN_EXE_fixture-flood");
const CHROMIUM: &str = "/usr/bin/chromium";
const OLDER_RUN: &str = "20000101T000000.000+0000";

/// The store both tests read: made once per test binary, in cargo's
/// scratch directory for integration tests (replaced by the next run).
fn store() -> &'static Path {
    static STORE: OnceLock<PathBuf> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-store");
        let _ = std::fs::remove_dir_all(&store);
        let output = Command::new(SIM)
            .args(["test", "-w", "broadcast", "--bin", FLOOD, "--store"])
            .arg(&store)
            .args(["--node-count", "3", "--time-limit", "2", "--rate", "30"])
            .args([
                "--nemesis",
                "partition",
                "--nemesis-interval",
                "1",
                "--seed",
                "5",
            ])
            .output()
            .expect("maelstrom-sim runs");
        assert!(
            store.join("latest/results.edn").is_file(),
            "the run wrote no results: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::create_dir_all(store.join("broadcast").join(OLDER_RUN)).unwrap();
        store
    })
}

fn run_name(store: &Path) -> String {
    let dir = std::fs::canonicalize(store.join("latest")).unwrap();
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// A `serve` process; killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(store: &Path) -> Server {
    let mut child = Command::new(SIM)
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--store"])
        .arg(store)
        .stdout(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "maelstrom-sim serve: DIR at http://127.0.0.1:PORT/ (Ctrl-C to stop)"
    let port = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    Server { child, port }
}

/// A response: status, lower-cased header block, body.
struct Response {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn content_type(&self) -> &str {
        self.headers
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or("")
    }
}

/// GET `path` exactly as written (no normalisation), HTTP/1.1, one request
/// per connection.
fn get(port: u16, path: &str) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let headers = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let mut body = raw[split + 4..].to_vec();
    if headers.contains("transfer-encoding: chunked") {
        body = unchunk(&body);
    }
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    Response {
        status,
        headers,
        body,
    }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..line_end])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// Every file under `dir`, relative, with `/` separators.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            out.extend(
                files_under(&entry.path())
                    .into_iter()
                    .map(|f| format!("{name}/{f}")),
            );
        } else {
            out.push(name);
        }
    }
    out
}

const PLOTS: [&str; 4] = [
    "latency-raw.svg",
    "latency-quantiles.svg",
    "rate.svg",
    "stable-latency-cdf.svg",
];

#[test]
fn serve_lists_runs_and_shows_each_runs_plots_and_files() {
    let store = store();
    let run = run_name(store);
    let encoded = run.replace('+', "%2B");
    let dir = store.join("broadcast").join(&run);
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["perf"]["valid?"], true);
    let server = serve(store);

    let index = get(server.port, "/");
    assert_eq!(index.status, 200);
    assert!(index.content_type().starts_with("text/html"));
    let index = index.text();
    let newest = index
        .find(&format!("/runs/{encoded}\""))
        .expect("the run is listed");
    let older = index.find(OLDER_RUN).expect("the older run is listed");
    assert!(newest < older, "newest first");
    assert!(index.contains("no results (aborted or running)"));
    let verdict = results["valid?"].as_bool().unwrap().to_string();
    let lost = results["workload"]["lost-count"].as_u64().unwrap();
    let row = index[newest..].lines().next().unwrap();
    assert!(
        row.contains(&format!(
            "<td class=\"{verdict}\">{verdict}</td><td>{lost}</td>"
        )),
        "{row}"
    );
    let per_op = results["net"]["servers"]["msgs-per-op"].as_f64().unwrap();
    assert!(row.contains(&format!("<td>{per_op:.3}</td>")), "{row}");

    let page = get(server.port, &format!("/runs/{encoded}"));
    assert_eq!(page.status, 200);
    let page = page.text();
    for plot in PLOTS {
        let url = format!("/files/broadcast/{encoded}/{plot}");
        assert!(
            page.contains(&format!("<img src=\"{url}\"")),
            "{plot} shown"
        );
        let svg = get(server.port, &url);
        assert_eq!(svg.status, 200, "{url}");
        assert_eq!(svg.content_type(), "image/svg+xml");
        assert!(svg.text().starts_with("<svg "));
    }
    assert!(page.contains(&format!(
        "<iframe src=\"/files/broadcast/{encoded}/timeline.html\""
    )));
    assert!(page.contains(&format!(
        "<img src=\"/files/broadcast/{encoded}/messages.svg\""
    )));
    let files = files_under(&dir);
    assert!(files.len() >= 14, "{files:?}");
    for file in &files {
        let url = format!("/files/broadcast/{encoded}/{file}");
        assert!(
            page.contains(&format!("<a href=\"{url}\">")),
            "{file} linked"
        );
    }
    let edn = get(
        server.port,
        &format!("/files/broadcast/{encoded}/results.edn"),
    );
    assert_eq!(edn.status, 200);
    assert_eq!(edn.content_type(), "text/plain; charset=utf-8");
    assert!(edn.text().contains(":perf {:latency-graph {:valid? true}"));

    // Every operation is one marker in latency-raw (plus one per legend
    // entry), and the partitions are shaded.
    let raw = std::fs::read_to_string(dir.join("latency-raw.svg")).unwrap();
    let by_f = |f: &str| results["stats"]["by-f"][f]["count"].as_u64().unwrap() as usize;
    assert_eq!(raw.matches("<circle").count(), by_f("broadcast") + 1);
    assert_eq!(raw.matches("<polygon").count(), by_f("read") + 1);
    assert!(raw.contains("fill=\"#E9DCA0\""), "partition shading");

    for bad in [
        "/runs/no-such-run".to_string(),
        "/runs/..%2F..%2Fetc".to_string(),
        "/files/../../../../etc/passwd".to_string(),
        "/files/broadcast/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_string(),
        format!("/files/broadcast/{encoded}/..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
    ] {
        let response = get(server.port, &bad);
        assert!(
            response.status == 404 || response.status == 400,
            "{bad}: {}",
            response.status
        );
        assert!(
            !response.text().contains("root:"),
            "{bad} escaped the store"
        );
    }
}

/// Runs `cmd`, killing it after `limit`; returns its stdout.
fn output_within(mut cmd: Command, limit: Duration) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

/// A page in the store (hence same-origin with the run page) that loads the
/// run page in a frame and, once everything has loaded, lists every image
/// on it with its natural size and the frame's timeline.
const CHECK_PAGE: &str = r#"<!DOCTYPE html>
<html><body><pre id="report">loading</pre>
<iframe id="run" width="1200" height="800"></iframe>
<script>
const run = document.getElementById('run');
run.onload = () => {
  const doc = run.contentDocument;
  const lines = [...doc.images].map(i =>
    'img ' + i.getAttribute('alt') + ' ' + (i.complete ? i.naturalWidth + 'x' + i.naturalHeight : 'pending'));
  const frame = doc.querySelector('iframe');
  const boxes = frame && frame.contentDocument ? frame.contentDocument.querySelectorAll('.op').length : -1;
  lines.push('timeline-boxes ' + boxes);
  document.getElementById('report').textContent = lines.join('\n');
};
run.src = location.hash.slice(1);
</script></body></html>
"#;

#[test]
fn a_browser_renders_the_run_pages_plots() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!(
            "SKIP a_browser_renders_the_run_pages_plots: {CHROMIUM} is absent \
             (Debian package `chromium`; .ci/run installs it)"
        );
        return;
    }
    let store = store();
    let run = run_name(store);
    std::fs::write(store.join("check.html"), CHECK_PAGE).unwrap();
    let server = serve(store);
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let url = format!(
        "http://127.0.0.1:{}/files/check.html#/runs/{}",
        server.port,
        run.replace('+', "%2B")
    );
    let mut chromium = Command::new(CHROMIUM);
    chromium
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url);
    let dom = output_within(chromium, Duration::from_secs(120));
    let _ = std::fs::remove_dir_all(&profile);
    let report: Vec<&str> = dom
        .split_once("<pre id=\"report\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(report, _)| report.lines().collect())
        .unwrap_or_else(|| panic!("no report in {dom}"));
    let size_of = |alt: &str| {
        report
            .iter()
            .find_map(|l| l.strip_prefix(&format!("img {alt} ")))
            .unwrap_or_else(|| panic!("no image {alt} in the report: {report:?}"))
    };
    assert_eq!(size_of("latency-raw.svg"), "1100x420");
    assert_eq!(size_of("latency-quantiles.svg"), "1100x420");
    assert_eq!(size_of("rate.svg"), "1100x420");
    assert_eq!(size_of("stable-latency-cdf.svg"), "1100x420");
    let messages = size_of("messages.svg");
    let (w, h) = messages.split_once('x').expect("a size");
    assert!(
        w.parse::<u32>().unwrap() > 0 && h.parse::<u32>().unwrap() > 0,
        "messages.svg {messages}"
    );
    let boxes = report
        .iter()
        .find_map(|l| l.strip_prefix("timeline-boxes "))
        .and_then(|n| n.parse::<i64>().ok())
        .expect("timeline boxes reported");
    assert!(boxes > 10, "the timeline frame rendered {boxes} boxes");
}
