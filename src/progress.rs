//! Progress of stages and outputs on an interactive terminal.
//!
//! Progress is shown only when stderr is a terminal and logs are text at the
//! default level, and then it replaces the info logs. A spinner runs while a stage
//! or output is computed, and turns into a line with its rows and time.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress display of one run; does nothing when disabled.
#[derive(Debug, Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl Progress {
    /// Returns a display that shows nothing.
    pub fn hidden() -> Self {
        Self { bars: None }
    }

    /// Returns a display on stderr when it is a terminal and `enabled`.
    pub fn on_terminal(enabled: bool) -> Self {
        if !(enabled && std::io::stderr().is_terminal()) {
            return Self::hidden();
        }
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        Self { bars: Some(bars) }
    }

    /// Returns whether progress is shown.
    pub fn is_shown(&self) -> bool {
        self.bars.is_some()
    }

    /// Starts a spinner for `label`, such as `stage customer_summary`.
    pub fn start(&self, label: String) -> Task {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new_spinner());
            let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_message(crate::redact::text(&label).into_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Task {
            bar,
            label,
            started: Instant::now(),
        }
    }
}

/// One stage or output in progress.
#[derive(Debug)]
pub struct Task {
    bar: Option<ProgressBar>,
    label: String,
    started: Instant,
}

impl Task {
    /// Replaces the spinner with a line that gives the rows written.
    pub fn finish(self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.set_style(
                ProgressStyle::with_template("  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            let line = format!(
                "{}: {rows} rows in {:.2} s",
                self.label,
                self.started.elapsed().as_secs_f64()
            );
            bar.finish_with_message(crate::redact::text(&line).into_owned());
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // A task dropped unfinished failed: its spinner goes away.
        if let Some(bar) = &self.bar
            && !bar.is_finished()
        {
            bar.finish_and_clear();
        }
    }
}
