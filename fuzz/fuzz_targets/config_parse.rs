//! ptt's configuration parser: any text as `ptt.toml` never panics; it
//! gives a configuration or problems, each with a line and a column inside
//! the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(problems) =
        ptt_bins::config::Config::parse(&text, Path::new("/nonexistent/ptt.toml"))
    {
        let lines = text.lines().count().max(1);
        for line in problems.to_string().lines() {
            // FILE:LINE:COL: what
            let mut parts = line.splitn(4, ':');
            let (_, l) = (parts.next(), parts.next());
            if let Some(n) = l.and_then(|l| l.parse::<usize>().ok()) {
                assert!(n >= 1 && n <= lines + 1, "line {n} of {lines}: {line}");
            }
        }
    }
});
