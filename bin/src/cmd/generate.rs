//! `openvle-moodle completions <shell>` and `openvle-moodle man`: what the Debian package installs
//! as shell completions and as `openvle-moodle(1)`, generated from the command line itself so
//! that they cannot drift from it (hidden subcommands: they are for packaging).

use std::io::Write;

use anyhow::Context;

/// The completions of the whole command line for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut out = Vec::new();
    render_completions(shell, &mut out);
    write_stdout(&out)
}

/// The man page, in roff, on stdout.
pub fn man() -> anyhow::Result<()> {
    let mut out = Vec::new();
    render_man(&mut out).context("rendering the man page")?;
    write_stdout(&out)
}

pub fn render_completions(shell: clap_complete::Shell, out: &mut Vec<u8>) {
    let mut cmd = crate::cli::command();
    clap_complete::generate(shell, &mut cmd, "openvle-moodle", out);
}

pub fn render_man(out: &mut Vec<u8>) -> std::io::Result<()> {
    clap_mangen::Man::new(crate::cli::command()).render(out)
}

/// A reader that went away (`… | head`) is no error of ours.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}
