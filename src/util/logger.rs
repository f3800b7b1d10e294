//! The `log` backend of `roost serve`: one line per record on stderr, `HH:MM:SS [LEVEL]
//! message` (UTC; at trace level `[file:line]` before the message), the format simplelog
//! wrote. Records whose target starts with an ignored prefix are dropped. A few lines of
//! our own instead of simplelog, which needed the `time` crate and its formatter for the
//! clock (~30 KB of the binary).

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fmt::Write as _;
use std::io::Write as _;

struct Stderr {
    level: LevelFilter,
    ignore: &'static [&'static str],
}

impl Stderr {
    fn wanted(&self, record: &Record<'_>) -> bool {
        self.enabled(record.metadata())
            && !self.ignore.iter().any(|p| record.target().starts_with(p))
    }
}

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.wanted(record) {
            return;
        }
        let line = format_line(super::datetime::unix_now(), record);
        // One write per line, so lines of different threads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// The line for `record` at Unix time `secs`, with its newline.
fn format_line(secs: i64, record: &Record<'_>) -> String {
    let rem = secs.rem_euclid(86_400);
    let mut line = format!(
        "{:02}:{:02}:{:02} [{}] ",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        record.level()
    );
    if record.level() == Level::Trace {
        let file = record.file().unwrap_or("<unknown>");
        match record.line() {
            Some(n) => _ = write!(line, "[{file}:{n}] "),
            None => _ = write!(line, "[{file}:<unknown>] "),
        }
    }
    _ = writeln!(line, "{}", record.args());
    line
}

/// Installs the logger: records up to `level`, none whose target starts with one of
/// `ignore`. Fails when a logger is already installed.
pub fn init(level: LevelFilter, ignore: &'static [&'static str]) -> Result<(), String> {
    log::set_logger(Box::leak(Box::new(Stderr { level, ignore }))).map_err(|e| e.to_string())?;
    log::set_max_level(level);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(secs: i64, level: Level, args: std::fmt::Arguments<'_>) -> String {
        format_line(
            secs,
            &Record::builder()
                .level(level)
                .target("roost::x")
                .file(Some("src/x.rs"))
                .line(Some(7))
                .args(args)
                .build(),
        )
    }

    #[test]
    fn lines_as_simplelog_wrote_them() {
        // 2026-12-07T16:05:09Z
        let t = 1_796_659_509;
        assert_eq!(
            line(t, Level::Info, format_args!("c2s on {}", 5222)),
            "16:05:09 [INFO] c2s on 5222\n"
        );
        assert_eq!(
            line(t, Level::Error, format_args!("x")),
            "16:05:09 [ERROR] x\n"
        );
        assert_eq!(
            line(59, Level::Warn, format_args!("y")),
            "00:00:59 [WARN] y\n"
        );
        assert_eq!(
            line(t, Level::Trace, format_args!("z")),
            "16:05:09 [TRACE] [src/x.rs:7] z\n"
        );
    }

    #[test]
    fn ignored_targets_and_levels() {
        let l = Stderr {
            level: LevelFilter::Info,
            ignore: &["rustls"],
        };
        let wanted = |level, target| {
            l.wanted(
                &Record::builder()
                    .level(level)
                    .target(target)
                    .args(format_args!("m"))
                    .build(),
            )
        };
        assert!(wanted(Level::Info, "roost::net"));
        assert!(wanted(Level::Warn, "roost"));
        assert!(!wanted(Level::Debug, "roost::net"));
        assert!(!wanted(Level::Warn, "rustls::conn"));
        assert!(!wanted(Level::Warn, "rustls"));
    }
}
