//! The run's output directory (spec 7.2): `store/broadcast/<timestamp>/`
//! with Jepsen's timestamp format, the `latest` and `current` symlinks, and
//! the `jepsen.log` logger that also echoes warnings to the console.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down local time with its UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// Seconds east of UTC.
    pub utc_offset_s: i64,
}

impl LocalTime {
    /// The current local time, as the C library's time zone rules give it.
    pub fn now() -> LocalTime {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since_epoch.as_secs() as libc::time_t;
        // SAFETY: localtime_r only writes into the `tm` we own; a zeroed tm
        // is a valid value of that plain C struct.
        let tm = unsafe {
            let mut tm: libc::tm = std::mem::zeroed();
            if libc::localtime_r(&secs, &mut tm).is_null() {
                // No zone information: fall back to UTC.
                libc::gmtime_r(&secs, &mut tm);
            }
            tm
        };
        LocalTime {
            year: tm.tm_year + 1900,
            month: (tm.tm_mon + 1) as u32,
            day: tm.tm_mday as u32,
            hour: tm.tm_hour as u32,
            minute: tm.tm_min as u32,
            second: tm.tm_sec as u32,
            millis: since_epoch.subsec_millis(),
            utc_offset_s: tm.tm_gmtoff,
        }
    }

    /// Jepsen's store directory name, e.g. `20230227T101530.123-0500`.
    pub fn store_name(&self) -> String {
        let sign = if self.utc_offset_s < 0 { '-' } else { '+' };
        let off = self.utc_offset_s.unsigned_abs();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}{}{:02}{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.millis,
            sign,
            off / 3600,
            off % 3600 / 60
        )
    }

    /// The log line time, e.g. `2023-02-27 10:15:30,123`.
    pub fn log_stamp(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }
}

/// Creates `<store>/broadcast/<timestamp>/` and its `node-logs/`, and points
/// `<store>/latest` and `<store>/current` (and the same two links inside
/// `<store>/broadcast/`) at it.
pub fn create_run_dir(store: &Path, now: &LocalTime) -> std::io::Result<PathBuf> {
    let test_dir = store.join("broadcast");
    let mut name = now.store_name();
    let mut suffix = 1;
    while test_dir.join(&name).exists() {
        // Two runs in the same millisecond: keep both.
        name = format!("{}-{suffix}", now.store_name());
        suffix += 1;
    }
    let run_dir = test_dir.join(&name);
    std::fs::create_dir_all(run_dir.join("node-logs"))?;
    for (dir, target) in [
        (store, Path::new("broadcast").join(&name)),
        (test_dir.as_path(), PathBuf::from(&name)),
    ] {
        for link in ["latest", "current"] {
            replace_symlink(&target, &dir.join(link))?;
        }
    }
    Ok(run_dir)
}

/// Atomically points `link` at `target` (relative to the link's directory).
fn replace_symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    let tmp = link.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

/// The run's log: every line goes to `jepsen.log`; warnings and console
/// lines are also printed to stderr. Cheap to clone.
#[derive(Clone)]
pub struct Logger {
    file: Option<Arc<Mutex<BufWriter<File>>>>,
}

impl Logger {
    /// A logger writing `dir/jepsen.log`.
    pub fn to_dir(dir: &Path) -> std::io::Result<Logger> {
        let file = File::create(dir.join("jepsen.log"))?;
        Ok(Logger {
            file: Some(Arc::new(Mutex::new(BufWriter::new(file)))),
        })
    }

    /// A logger that only prints to the console (for tests).
    pub fn console_only() -> Logger {
        Logger { file: None }
    }

    fn write(&self, level: &str, msg: &str, console: bool) {
        let line = format!("{level} [{}] {msg}", LocalTime::now().log_stamp());
        if console {
            super::progress::console_line(&line);
        }
        if let Some(file) = &self.file {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "{line}");
        }
    }

    /// A line for jepsen.log only.
    pub fn info(&self, msg: &str) {
        self.write("INFO", msg, false);
    }

    /// A line for jepsen.log and the console.
    pub fn console(&self, msg: &str) {
        self.write("INFO", msg, true);
    }

    /// A warning, in jepsen.log and on the console.
    pub fn warn(&self, msg: &str) {
        self.write("WARN", msg, true);
    }

    pub fn flush(&self) {
        if let Some(file) = &self.file {
            let _ = file.lock().unwrap_or_else(|p| p.into_inner()).flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(offset: i64) -> LocalTime {
        LocalTime {
            year: 2023,
            month: 2,
            day: 7,
            hour: 9,
            minute: 5,
            second: 3,
            millis: 12,
            utc_offset_s: offset,
        }
    }

    #[test]
    fn store_name_is_jepsen_style() {
        assert_eq!(t(-5 * 3600).store_name(), "20230207T090503.012-0500");
        assert_eq!(t(5 * 3600 + 1800).store_name(), "20230207T090503.012+0530");
        assert_eq!(t(0).store_name(), "20230207T090503.012+0000");
    }

    #[test]
    fn log_stamp_uses_a_comma_before_millis() {
        assert_eq!(t(0).log_stamp(), "2023-02-07 09:05:03,012");
    }

    #[test]
    fn now_is_plausible() {
        let now = LocalTime::now();
        assert!(now.year >= 2024 && (1..=12).contains(&now.month));
        assert!(now.utc_offset_s.abs() <= 14 * 3600);
    }

    #[test]
    fn run_dirs_get_links_and_never_collide() {
        let store = std::env::temp_dir().join(format!("msim-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&store);
        let now = t(0);
        let a = create_run_dir(&store, &now).unwrap();
        let b = create_run_dir(&store, &now).unwrap();
        assert_ne!(a, b);
        assert!(b.join("node-logs").is_dir());
        for link in ["latest", "current", "broadcast/latest"] {
            let resolved = std::fs::canonicalize(store.join(link)).unwrap();
            assert_eq!(resolved, std::fs::canonicalize(&b).unwrap(), "{link}");
        }
        std::fs::remove_dir_all(&store).unwrap();
    }
}
