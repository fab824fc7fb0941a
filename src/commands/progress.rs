//! The command-line [`Reporter`]: progress bars on a terminal, plain lines
//! otherwise (CI logs), nothing with `--quiet`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata::report::{human_bytes, Reporter, TaskKind};

pub struct CliReporter {
    quiet: bool,
    bars: Option<MultiProgress>,
    tasks: Mutex<HashMap<u64, Task>>,
}

struct Task {
    label: String,
    kind: TaskKind,
    started: Instant,
    bar: Option<ProgressBar>,
    done: u64,
}

fn verb(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Download => "fetch",
        TaskKind::Layer => "layer",
        TaskKind::Upload => "push",
        TaskKind::Other => "task",
    }
}

impl CliReporter {
    pub fn new(quiet: bool) -> CliReporter {
        let tty = std::io::stderr().is_terminal();
        let bars = (tty && !quiet).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        CliReporter { quiet, bars, tasks: Mutex::new(HashMap::new()) }
    }

    fn line(&self, s: &str) {
        if self.quiet {
            return;
        }
        // Labels and messages name inputs (artifacts, layers): no raw control characters.
        let s = strata::report::printable(s);
        match &self.bars {
            Some(mp) => {
                let _ = mp.println(s);
            }
            None => eprintln!("{s}"),
        }
    }
}

impl Reporter for CliReporter {
    fn start(&self, id: u64, kind: TaskKind, label: &str, total: Option<u64>) {
        let bar = self.bars.as_ref().map(|mp| {
            let pb = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::no_length(),
            };
            let style = ProgressStyle::with_template(
                "{prefix:>6} {msg:40!} {bar:24} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            pb.set_style(style);
            pb.set_prefix(verb(kind));
            pb.set_message(strata::report::one_line(label));
            pb.enable_steady_tick(Duration::from_millis(250));
            mp.add(pb)
        });
        if bar.is_none() && !self.quiet {
            let label = strata::report::one_line(label);
            eprintln!(
                "{:>6} {label}{}",
                verb(kind),
                total.map(|t| format!(" ({})", human_bytes(t))).unwrap_or_default()
            );
        }
        if let Ok(mut t) = self.tasks.lock() {
            t.insert(id, Task { label: label.to_string(), kind, started: Instant::now(), bar, done: 0 });
        }
    }

    fn progress(&self, id: u64, done: u64) {
        if let Ok(mut t) = self.tasks.lock() {
            if let Some(task) = t.get_mut(&id) {
                task.done = done;
                if let Some(b) = &task.bar {
                    b.set_position(done);
                }
            }
        }
    }

    fn finish(&self, id: u64, summary: &str) {
        let task = self.tasks.lock().ok().and_then(|mut t| t.remove(&id));
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
