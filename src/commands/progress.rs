//! The command-line [`Reporter`]: progress bars on a terminal, plain lines
//! with a regular heartbeat otherwise (CI logs), nothing with `--quiet` or
//! `--progress none`.
//!
//! `--progress auto` (the default) draws bars only when stderr is a
//! terminal, `NO_COLOR` is not set and `TERM` is not `dumb`; otherwise it
//! writes plain lines, which never carry escape sequences. Plain output
//! prints, at least every [`DEFAULT_INTERVAL`] while work goes on, one line
//! per running task (done/total bytes, rate) and an overall total, so a CI
//! log never looks hung.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata::report::{human_bytes, Reporter, TaskKind};

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise (and with NO_COLOR or TERM=dumb).
    #[default]
    Auto,
    /// Bars, also when stderr is not a terminal.
    Tty,
    /// Plain lines with a heartbeat: for CI logs.
    Plain,
    /// No progress at all (warnings and errors still show).
    None,
}

/// The longest time plain output stays silent while work goes on.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

static MODE: OnceLock<ProgressMode> = OnceLock::new();

/// Sets the mode every reporter of this process uses (from `--progress`).
pub fn set_mode(mode: ProgressMode) {
    let _ = MODE.set(mode);
}

/// True when colour and other escape sequences are unwelcome: `NO_COLOR`
/// set to anything but the empty string (https://no-color.org), or a dumb terminal.
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) || std::env::var_os("TERM").is_some_and(|t| t == "dumb")
}

/// The heartbeat interval: `STRATA_PROGRESS_INTERVAL` seconds (0.1 to
/// 3600), else [`DEFAULT_INTERVAL`].
fn interval() -> Duration {
    std::env::var("STRATA_PROGRESS_INTERVAL")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| (0.1..=3600.0).contains(s))
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_INTERVAL)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Bars,
    Lines,
    Nothing,
}

pub struct CliReporter {
    quiet: bool,
    shown: Shown,
    bars: Option<MultiProgress>,
    state: Arc<Mutex<State>>,
    /// Dropping it stops the heartbeat thread.
    _stop: Option<mpsc::Sender<()>>,
}

struct Task {
    label: String,
    kind: TaskKind,
    started: Instant,
    total: Option<u64>,
    done: u64,
    /// `done` at the last heartbeat, and when that was.
    beat: (u64, Instant),
    bar: Option<ProgressBar>,
}

/// The work of one kind: what was announced and what is finished.
#[derive(Default)]
struct Totals {
    planned_items: u64,
    planned_bytes: Option<u64>,
    finished_items: u64,
    finished_bytes: u64,
    /// Bytes done (finished and running) at the last heartbeat.
    beat: u64,
    bar: Option<ProgressBar>,
}

struct State {
    tasks: BTreeMap<u64, Task>,
    totals: BTreeMap<u8, Totals>,
    started: Instant,
    last_beat: Instant,
    /// When a line was last printed (plain output).
    last_line: Instant,
}

fn key(kind: TaskKind) -> u8 {
    match kind {
        TaskKind::Download => 0,
        TaskKind::Layer => 1,
        TaskKind::Upload => 2,
        TaskKind::Other => 3,
    }
}

fn kind_of(key: u8) -> TaskKind {
    match key {
        0 => TaskKind::Download,
        1 => TaskKind::Layer,
        2 => TaskKind::Upload,
        _ => TaskKind::Other,
    }
}

fn verb(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Download => "fetch",
        TaskKind::Layer => "layer",
        TaskKind::Upload => "push",
        TaskKind::Other => "task",
    }
}

fn plural(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Download => "downloads",
        TaskKind::Layer => "layers",
        TaskKind::Upload => "uploads",
        TaskKind::Other => "tasks",
    }
}

/// `1m05s`, `42s`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn rate(bytes: u64, d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 0.05 {
        // Too short a window to say anything but "nothing measurable yet".
        return "0 B/s".into();
    }
    format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
}

fn amount(done: u64, total: Option<u64>) -> String {
    match total {
        Some(t) if t > 0 => {
            format!("{} / {} ({}%)", human_bytes(done), human_bytes(t), (done.min(t) * 100) / t)
        }
        _ => format!("{} so far", human_bytes(done)),
    }
}

impl State {
    fn bytes_done(&self, k: u8) -> u64 {
        let t = self.totals.get(&k).map_or(0, |t| t.finished_bytes);
        t + self.tasks.values().filter(|x| key(x.kind) == k).map(|x| x.done).sum::<u64>()
    }

    /// The overall line of one kind of work, with its rate when known.
    fn total_line(&self, k: u8, rate_text: Option<&str>) -> String {
        let kind = kind_of(k);
        let t = self.totals.get(&k);
        let running = self.tasks.values().filter(|x| key(x.kind) == k).count() as u64;
        let finished = t.map_or(0, |t| t.finished_items);
        let planned = t.map_or(0, |t| t.planned_items).max(finished + running);
        let rate_text = rate_text.map(|r| format!(", {r}")).unwrap_or_default();
        format!(
            "{}: {finished} of {planned} done, {}{rate_text}, {} elapsed",
            plural(kind),
            amount(self.bytes_done(k), t.and_then(|t| t.planned_bytes)),
            duration(self.started.elapsed())
        )
    }

    /// The heartbeat of plain output: one line per running task and an
    /// overall total per kind of work; a short line when nothing runs and
    /// nothing was printed for a whole interval.
    fn heartbeat(&mut self, every: Duration) -> Vec<String> {
        let now = Instant::now();
        let dt = now.duration_since(self.last_beat);
        self.last_beat = now;
        let mut lines = Vec::new();
        for t in self.tasks.values_mut() {
            // A beat that comes right after the last one (or the start) says
            // little: use the average since the task started instead.
            let window = now.duration_since(t.beat.1);
            let r = if window.as_secs_f64() < 0.05 {
                rate(t.done, now.duration_since(t.started))
            } else {
                rate(t.done.saturating_sub(t.beat.0), window)
            };
            lines.push(format!("{:>6} {}  {}, {r}", verb(t.kind), t.label, amount(t.done, t.total)));
            t.beat = (t.done, now);
        }
        let active: Vec<u8> = {
            let mut v: Vec<u8> = self.tasks.values().map(|t| key(t.kind)).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        for k in active {
            let done = self.bytes_done(k);
            let before = self.totals.get(&k).map_or(0, |t| t.beat);
            let line = self.total_line(k, Some(&rate(done.saturating_sub(before), dt)));
            lines.push(format!("{:>6} {line}", "total"));
            self.totals.entry(k).or_default().beat = done;
        }
        if lines.is_empty() && now.duration_since(self.last_line) >= every {
            lines.push(format!("{:>6} still working, {} elapsed", "…", duration(self.started.elapsed())));
        }
        lines
    }
}

impl CliReporter {
    pub fn new(quiet: bool) -> CliReporter {
        let mode = MODE.get().copied().unwrap_or_default();
        let tty = std::io::stderr().is_terminal();
        let shown = match mode {
            _ if quiet => Shown::Nothing,
            ProgressMode::None => Shown::Nothing,
            ProgressMode::Tty => Shown::Bars,
            ProgressMode::Plain => Shown::Lines,
            ProgressMode::Auto if tty && !no_color() => Shown::Bars,
            ProgressMode::Auto => Shown::Lines,
        };
        let bars =
            (shown == Shown::Bars).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        let now = Instant::now();
        let state = Arc::new(Mutex::new(State {
            tasks: BTreeMap::new(),
            totals: BTreeMap::new(),
            started: now,
            last_beat: now,
            last_line: now,
        }));
        let stop = (shown == Shown::Lines).then(|| {
            let (tx, rx) = mpsc::channel::<()>();
            let state = Arc::clone(&state);
            let every = interval();
            std::thread::spawn(move || {
                // Ends when the reporter is dropped (the sender with it).
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    let lines = match state.lock() {
                        Ok(mut s) => {
                            let l = s.heartbeat(every);
                            if !l.is_empty() {
                                s.last_line = Instant::now();
                            }
                            l
                        }
                        Err(_) => break,
                    };
                    for l in lines {
                        eprintln!("{}", strata::report::printable(&l));
                    }
                }
            });
            tx
        });
        CliReporter { quiet, shown, bars, state, _stop: stop }
    }

    fn line(&self, s: &str) {
        if self.quiet || self.shown == Shown::Nothing {
            return;
        }
        // Labels and messages name inputs (artifacts, layers): no raw control characters.
        let s = strata::report::printable(s);
        match &self.bars {
            Some(mp) => {
                let _ = mp.println(s);
            }
            None => {
                if let Ok(mut st) = self.state.lock() {
                    st.last_line = Instant::now();
                }
                eprintln!("{s}")
            }
        }
    }

    fn bar_style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix:>6} {msg:40!} {bar:24} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
    }

    /// The overall bar of one kind of work (bars only), kept last.
    fn update_total_bar(&self, st: &mut State, k: u8) {
        let Some(mp) = &self.bars else { return };
        let done = st.bytes_done(k);
        let msg = st.total_line(k, None);
        let Some(t) = st.totals.get_mut(&k) else { return };
        let bar = t.bar.get_or_insert_with(|| {
            let pb = match t.planned_bytes {
                Some(b) => ProgressBar::new(b),
                None => ProgressBar::no_length(),
            };
            pb.set_style(
                ProgressStyle::with_template("{prefix:>6} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_prefix("total");
            mp.add(pb)
        });
        bar.set_position(done);
        bar.set_message(msg);
    }
}

impl Reporter for CliReporter {
    fn plan(&self, kind: TaskKind, items: u64, bytes: Option<u64>) {
        if let Ok(mut st) = self.state.lock() {
            let k = key(kind);
            let t = st.totals.entry(k).or_default();
            t.planned_items += items;
            t.planned_bytes = match (t.planned_bytes, bytes) {
                (Some(a), Some(b)) => Some(a + b),
                (None, b) if t.planned_items == items => b,
                _ => None,
            };
            self.update_total_bar(&mut st, k);
        }
        // Layers are announced one by one as they start; a batch of
        // downloads or uploads is announced with its size.
        if self.shown == Shown::Lines && items > 0 && kind != TaskKind::Layer {
            let size = bytes.map(|b| format!(", {} in all", human_bytes(b))).unwrap_or_default();
            let what = if items == 1 { plural(kind).trim_end_matches('s') } else { plural(kind) };
            self.line(&format!("{:>6} {items} {what}{size}", verb(kind)));
        }
    }

    fn start(&self, id: u64, kind: TaskKind, label: &str, total: Option<u64>) {
        let label = strata::report::one_line(label);
        let bar = self.bars.as_ref().map(|mp| {
            let pb = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::no_length(),
            };
            pb.set_style(Self::bar_style());
            pb.set_prefix(verb(kind));
            pb.set_message(label.clone());
            pb.enable_steady_tick(Duration::from_millis(250));
            // Task bars go above the total bars.
            let above = self.state.lock().ok().and_then(|st| st.totals.values().find_map(|t| t.bar.clone()));
            match above {
                Some(b) => mp.insert_before(&b, pb),
                None => mp.add(pb),
            }
        });
        if self.shown == Shown::Lines {
            self.line(&format!(
                "{:>6} {label}{}",
                verb(kind),
                total.map(|t| format!(" ({})", human_bytes(t))).unwrap_or_default()
            ));
        }
        if let Ok(mut t) = self.state.lock() {
            let now = Instant::now();
            t.tasks.insert(id, Task { label, kind, started: now, total, done: 0, beat: (0, now), bar });
        }
    }

    fn progress(&self, id: u64, done: u64) {
        if let Ok(mut st) = self.state.lock() {
            let Some(task) = st.tasks.get_mut(&id) else { return };
            task.done = done;
            if let Some(b) = &task.bar {
                b.set_position(done);
            }
            let k = key(task.kind);
            if self.bars.is_some() {
                self.update_total_bar(&mut st, k);
            }
        }
    }

    fn finish(&self, id: u64, summary: &str) {
        let task = self.state.lock().ok().and_then(|mut st| {
            let task = st.tasks.remove(&id)?;
            let t = st.totals.entry(key(task.kind)).or_default();
            t.finished_items += 1;
            t.finished_bytes += task.done;
            self.update_total_bar(&mut st, key(task.kind));
            Some(task)
        });
        if let Some(task) = task {
            if let Some(b) = &task.bar {
                b.finish_and_clear();
            }
            let secs = task.started.elapsed().as_secs_f64();
            let rate = if secs > 0.05 && task.done > 0 {
                format!(", {}/s", human_bytes((task.done as f64 / secs) as u64))
            } else {
                String::new()
            };
            self.line(&format!("{:>6} {} — {summary} in {secs:.1}s{rate}", verb(task.kind), task.label));
        }
    }

    fn info(&self, message: &str) {
        self.line(message);
    }

    fn warn(&self, message: &str) {
        let message = strata::report::printable(message);
        // Warnings show even with --quiet.
        match &self.bars {
            Some(mp) => {
                let _ = mp.println(format!("warning: {message}"));
            }
            None => eprintln!("warning: {message}"),
        }
    }
}

impl Drop for CliReporter {
    fn drop(&mut self) {
        if let Ok(st) = self.state.lock() {
            for t in st.totals.values() {
                if let Some(b) = &t.bar {
                    b.finish_and_clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_names_each_task_and_the_total_with_rates() {
        let start = Instant::now() - Duration::from_secs(20);
        let mut st = State {
            tasks: BTreeMap::new(),
            totals: BTreeMap::new(),
            started: start,
            last_beat: Instant::now() - Duration::from_secs(10),
            last_line: start,
        };
        st.totals.insert(
            0,
            Totals {
                planned_items: 3,
                planned_bytes: Some(4 << 20),
                finished_items: 1,
                finished_bytes: 1 << 20,
                ..Default::default()
            },
        );
        st.tasks.insert(
            7,
            Task {
                label: "big.whl".into(),
                kind: TaskKind::Download,
                started: Instant::now() - Duration::from_secs(10),
                total: Some(2 << 20),
                done: 1 << 20,
                beat: (0, Instant::now() - Duration::from_secs(10)),
                bar: None,
            },
        );
        let lines = st.heartbeat(DEFAULT_INTERVAL);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with(" fetch big.whl  1.0 MiB / 2.0 MiB (50%), "), "{lines:?}");
        assert!(lines[0].ends_with("KiB/s"), "{lines:?}");
        assert!(lines[1].starts_with(" total downloads: 1 of 3 done, 2.0 MiB / 4.0 MiB (50%), "), "{lines:?}");
        assert!(lines[1].ends_with(", 20s elapsed"), "{lines:?}");
        // Nothing running: a short line, only after a silent interval.
        st.tasks.clear();
        st.last_line = Instant::now();
        assert!(st.heartbeat(DEFAULT_INTERVAL).is_empty());
        st.last_line = Instant::now() - DEFAULT_INTERVAL;
        assert_eq!(st.heartbeat(DEFAULT_INTERVAL), ["     … still working, 20s elapsed"]);
    }
}
