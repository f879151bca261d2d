//! Progress bars on standard error (hidden when it is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `len` items, labelled `label`.
pub fn bar(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed_precise}, eta {eta}]")
    {
        bar.set_style(style);
    }
    bar.set_message(label.to_string());
    bar
}
