//! Progress bars (indicatif): drawn on stderr only when both stdout and stderr are terminals,
//! so piped or captured output never contains control sequences.

use std::{io::IsTerminal, sync::Mutex, time::Duration};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use splitstore_core::{Phase, Progress, ProgressSink};

/// True when progress bars should be drawn.
pub fn interactive() -> bool {
    std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// A set of bars sharing the terminal; hidden when not [`interactive`].
pub fn multi() -> MultiProgress {
    let target = if interactive() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    MultiProgress::with_draw_target(target)
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A bar counting bytes (imports).
pub fn bytes_bar(mp: &MultiProgress, total: u64, label: &str) -> ProgressBar {
    let pb = mp.add(ProgressBar::new(total));
    pb.set_style(style("{prefix:>8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {msg}"));
    pb.set_prefix(label.to_string());
    pb
}

/// A bar counting items (epochs, objects).
pub fn count_bar(mp: &MultiProgress, total: Option<u64>, label: &str) -> ProgressBar {
    let pb = match total {
        Some(t) => {
            let pb = mp.add(ProgressBar::new(t));
            pb.set_style(style("{prefix:>8} [{bar:40}] {pos}/{len} {per_sec} {msg}"));
            pb
        }
        None => {
            let pb = mp.add(ProgressBar::new_spinner());
            pb.set_style(style("{prefix:>8} {spinner} {pos} {per_sec} {msg}"));
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        }
    };
    pb.set_prefix(label.to_string());
    pb
}

/// A [`ProgressSink`] showing one bar per compaction phase, each finished when the next
/// phase starts. Also logs every phase start through `tracing`.
#[derive(Debug)]
pub struct PhaseBars {
    mp: MultiProgress,
    current: Mutex<Option<(Phase, ProgressBar)>>,
}

impl PhaseBars {
    /// Bars drawn in `mp`.
    pub fn new(mp: &MultiProgress) -> Self {
        Self { mp: mp.clone(), current: Mutex::new(None) }
    }

    /// Finishes the last bar.
    pub fn finish(&self) {
        if let Ok(mut cur) = self.current.lock() {
            if let Some((_, pb)) = cur.take() {
                pb.finish();
            }
        }
    }
}

impl ProgressSink for PhaseBars {
    fn report(&self, p: &Progress) {
        let Ok(mut cur) = self.current.lock() else { return };
        let same = matches!(&*cur, Some((phase, _)) if *phase == p.phase);
        if !same {
            if let Some((_, pb)) = cur.take() {
                pb.finish();
            }
            tracing::info!(phase = p.phase.as_str(), total = ?p.total, "compaction phase");
            *cur = Some((p.phase, count_bar(&self.mp, p.total, p.phase.as_str())));
        }
        if let Some((_, pb)) = cur.as_ref() {
            if let Some(t) = p.total {
                pb.set_length(t);
            }
            pb.set_position(p.done);
        }
    }
}

impl Drop for PhaseBars {
    fn drop(&mut self) {
        self.finish();
    }
}
