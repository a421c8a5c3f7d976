//! `ptt`: one command for the servers and the tools of a ptt mail domain.
//! Everything lives in the `ptt_bins` library; this is only its entry.

fn main() -> std::process::ExitCode {
    ptt_bins::main()
}
