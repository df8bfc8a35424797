//! `maelstrom-sim serve`: a small web view of a store directory, like
//! Maelstrom's `serve`. `/` lists the runs newest first with their verdict,
//! lost count, servers msgs-per-op and stable-latency median and max; each
//! run's page (`/runs/<name>`) shows its plots, timeline.html and
//! messages.svg, and links to every file. Files are served from `/files/`
//! by tower-http's `ServeDir`, which refuses paths that leave the store.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Args;
use tower_http::services::ServeDir;

use super::backlog::NaturalKey;
use super::report::{Edn, RunFigures};
use super::visual::escape;

/// `serve`'s options; Maelstrom's defaults.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0", value_name = "H")]
    pub host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 8080, value_name = "P")]
    pub port: u16,
    /// [extension] Directory holding the store.
    #[arg(long, default_value = "store", value_name = "DIR")]
    pub store: PathBuf,
}

/// A validated `serve` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub store: PathBuf,
}

impl ServeArgs {
    /// Resolves the address; the error is a one-line reason.
    pub fn validate(self) -> Result<ServeConfig, String> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("--host {:?}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("--host {:?}: no address", self.host))?;
        Ok(ServeConfig {
            addr,
            store: self.store,
        })
    }
}

/// Serves until the process ends. Prints the address it listens on (the
/// real port when `--port 0`) as the first line on stdout.
pub async fn serve(config: ServeConfig) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "maelstrom-sim serve: {} at http://{addr}/ (Ctrl-C to stop)",
        config.store.display()
    );
    axum::serve(listener, router(config.store)).await
}

/// The web view of `store`.
pub fn router(store: PathBuf) -> Router {
    let files = ServeDir::new(&store);
    Router::new()
        .route("/", get(index))
        .route("/runs/{name}", get(run_page))
        .nest_service("/files", files)
        .layer(axum::middleware::map_response(text_for_unknown_types))
        .with_state(Arc::new(store))
}

/// results.edn, history.edn and the node logs are text; a type the file
/// service does not know would make the browser download them instead.
async fn text_for_unknown_types(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if headers.get(header::CONTENT_TYPE)
        == Some(&HeaderValue::from_static("application/octet-stream"))
    {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

type Store = State<Arc<PathBuf>>;

async fn index(State(store): Store) -> Response {
    let page = tokio::task::spawn_blocking(move || index_html(&store)).await;
    match page {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn run_page(State(store): Store, UrlPath(name): UrlPath<String>) -> Response {
    let page = tokio::task::spawn_blocking(move || run_html(&store, &name)).await;
    match page {
        Ok(Some(html)) => Html(html).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such run\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A run directory's name: what `create_run_dir` makes (digits, letters,
/// `.`, `+`, `-`), never a path.
fn is_run_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_'))
}

/// The runs under `store/broadcast`, newest first: real directories only
/// (not the `latest` and `current` links).
pub fn list_runs(store: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(store.join("broadcast")) else {
        return Vec::new();
    };
    let mut runs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_run_name(name))
        .collect();
    // Store names start with the timestamp, so newest first is reverse order.
    runs.sort_unstable_by(|a, b| b.cmp(a));
    runs
}

/// A URL path segment for a file or run name.
fn url_segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn file_url(run: &str, relative: &str) -> String {
    let path: Vec<String> = relative.split('/').map(url_segment).collect();
    format!("/files/broadcast/{}/{}", url_segment(run), path.join("/"))
}

fn figures(run_dir: &Path) -> Option<RunFigures> {
    let text = std::fs::read_to_string(run_dir.join("results.edn")).ok()?;
    Edn::parse(&text).ok().map(|r| RunFigures::from_results(&r))
}

fn number(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

const STYLE: &str = "<style>\
body{font:14px sans-serif;margin:16px;max-width:1200px}\
table{border-collapse:collapse}\
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}\
td:first-child,th:first-child{text-align:left}\
.true{color:#1a7f37}.false{color:#c00;font-weight:bold}.unknown{color:#b60}\
img{display:block;max-width:100%;margin:8px 0 24px;border:1px solid #eee}\
iframe{width:100%;height:600px;border:1px solid #ddd}\
.scroll{max-height:800px;overflow:auto;border:1px solid #eee}\
.scroll img{max-width:none;border:0;margin:0}\
</style>";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>{STYLE}</head>\n<body>\n{body}</body></html>\n",
        escape(title)
    )
}

/// The figures of one run as table cells: verdict, lost, msgs/op, median, max.
fn figure_cells(figures: Option<&RunFigures>) -> String {
    match figures {
        None => "<td class=\"unknown\">no results (aborted or running)</td><td></td><td></td><td></td><td></td>".into(),
        Some(f) => {
            let verdict = f.valid.to_string();
            format!(
                "<td class=\"{verdict}\">{verdict}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                f.lost_count.map_or("-".into(), |n| n.to_string()),
                number(f.servers_msgs_per_op, 3),
                number(f.median(), 0),
                number(f.max(), 0),
            )
        }
    }
}

const FIGURE_HEADS: &str =
    "<th>valid?</th><th>lost</th><th>msgs/op</th><th>median (ms)</th><th>max (ms)</th>";

/// The list of runs.
pub fn index_html(store: &Path) -> String {
    let runs = list_runs(store);
    let mut body = format!(
        "<h1>maelstrom-sim store</h1>\n<p>{} run{} in <code>{}</code>, newest first. \
         msgs/op is servers msgs-per-op; median and max are stable latencies.</p>\n",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        escape(&store.display().to_string())
    );
    if runs.is_empty() {
        body.push_str(
            "<p>No runs yet: <code>maelstrom-sim test -w broadcast ...</code> makes one.</p>\n",
        );
        return page("maelstrom-sim store", &body);
    }
    body.push_str(&format!("<table>\n<tr><th>run</th>{FIGURE_HEADS}</tr>\n"));
    for run in &runs {
        let figures = figures(&store.join("broadcast").join(run));
        body.push_str(&format!(
            "<tr><td><a href=\"/runs/{}\">{}</a></td>{}</tr>\n",
            url_segment(run),
            escape(run),
            figure_cells(figures.as_ref())
        ));
    }
    body.push_str("</table>\n");
    page("maelstrom-sim store", &body)
}

/// Every file under `dir`, as paths relative to it, in natural order.
fn files_under(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&relative)) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = relative.join(entry.file_name());
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(path),
                Ok(m) => out.push((path.to_string_lossy().into_owned(), m.len())),
                Err(_) => {}
            }
        }
    }
    out.sort_by_key(|(path, _)| {
        let depth = path.matches('/').count();
        (depth, NaturalKey::new(path))
    });
    out
}

/// The plots of a run, in reading order (each carries its own title).
const PLOTS: [&str; 5] = [
    "latency-raw.svg",
    "latency-quantiles.svg",
    "rate.svg",
    "stable-latency-cdf.svg",
    "backlog-cluster.svg",
];

/// One run's page; `None` when there is no such run.
pub fn run_html(store: &Path, name: &str) -> Option<String> {
    if !is_run_name(name) {
        return None;
    }
    let dir = store.join("broadcast").join(name);
    if !dir.is_dir() {
        return None;
    }
    let files = files_under(&dir);
    let has = |file: &str| files.iter().any(|(f, _)| f == file);
    let mut body = format!(
        "<p><a href=\"/\">all runs</a></p>\n<h1>{}</h1>\n<table>\n<tr>{FIGURE_HEADS}</tr>\n<tr>{}</tr>\n</table>\n",
        escape(name),
        figure_cells(figures(&dir).as_ref())
    );
    body.push_str("<h2>Plots</h2>\n");
    for file in PLOTS.iter().filter(|f| has(f)) {
        body.push_str(&format!(
            "<img src=\"{}\" alt=\"{file}\">\n",
            file_url(name, file)
        ));
    }
    let node_plots: Vec<&String> = files
        .iter()
        .map(|(f, _)| f)
        .filter(|f| f.starts_with("backlog/") && f.ends_with(".svg"))
        .collect();
    if !node_plots.is_empty() {
        body.push_str("<h3>Backlog per node</h3>\n");
        for file in node_plots {
            body.push_str(&format!(
                "<img src=\"{}\" alt=\"{}\">\n",
                file_url(name, file),
                escape(file)
            ));
        }
    }
    if has("timeline.html") {
        let url = file_url(name, "timeline.html");
        body.push_str(&format!(
            "<h2>Timeline</h2>\n<p><a href=\"{url}\">timeline.html</a></p>\n<iframe src=\"{url}\" title=\"timeline\"></iframe>\n"
        ));
    }
    if has("messages.svg") {
        let url = file_url(name, "messages.svg");
        body.push_str(&format!(
            "<h2>Messages</h2>\n<p><a href=\"{url}\">messages.svg</a></p>\n<div class=\"scroll\"><img src=\"{url}\" alt=\"messages.svg\"></div>\n"
        ));
    }
    body.push_str("<h2>Files</h2>\n<table>\n<tr><th>file</th><th>bytes</th></tr>\n");
    for (file, bytes) in &files {
        body.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td>{bytes}</td></tr>\n",
            file_url(name, file),
            escape(file)
        ));
    }
    body.push_str("</table>\n");
    Some(page(name, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert!(is_run_name("20230227T101530.123-0500"));
        assert!(is_run_name("20230227T101530.123+0000-1"));
        for bad in ["", "..", ".", "a/b", "a\\b", "latest?x", "%2e%2e"] {
            assert!(!is_run_name(bad), "{bad}");
        }
        assert_eq!(
            url_segment("20230227T101530.123+0000"),
            "20230227T101530.123%2B0000"
        );
        assert_eq!(
            file_url("r+1", "backlog/n0.svg"),
            "/files/broadcast/r%2B1/backlog/n0.svg"
        );
    }

    #[test]
    fn defaults_are_maelstroms_and_bad_hosts_are_refused() {
        let args = ServeArgs {
            host: "0.0.0.0".into(),
            port: 8080,
            store: "store".into(),
        };
        assert_eq!(
            args.validate().unwrap().addr,
            "0.0.0.0:8080".parse().unwrap()
        );
        let bad = ServeArgs {
            host: "no such host!".into(),
            port: 1,
            store: "store".into(),
        };
        assert!(bad.validate().unwrap_err().starts_with("--host"));
    }
}
