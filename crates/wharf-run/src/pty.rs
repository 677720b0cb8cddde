//! Terminals for attached one-off processes (`heroku run bash`): a pseudo-terminal pair whose
//! slave end becomes the process's stdin, stdout, stderr and controlling terminal (through
//! util-linux's `setsid --ctty`), and whose master end wharf reads the output from and writes
//! the client's keystrokes to. The terminal's line discipline then does what users expect of
//! an interactive session: echo, line editing, Ctrl-C as SIGINT to the foreground job, Ctrl-D
//! as end of input, and programs see a terminal (`isatty`, `stty size`, prompts, colours).

use std::io;
use std::os::fd::OwnedFd;

use rustix::pty::OpenptFlags;

pub use wharf_core::backend::TtySize;

/// A new terminal pair: the master end (wharf's) and the slave end (the process's).
pub(crate) struct Pair {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Opens a terminal pair of `size`. Both ends are close-on-exec from the start: no other
/// process wharf starts meanwhile (another app's, say) inherits either, and the process gets
/// the slave end only as its stdin, stdout and stderr.
pub(crate) fn open(size: TtySize) -> io::Result<Pair> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags)?;
    rustix::termios::tcsetwinsize(
        &slave,
        rustix::termios::Winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(Pair { master, slave })
}

/// The master end as a reader of what the terminal shows and a writer of what is typed at it.
/// Reads end with an error (EIO) once no process holds the slave end any more. (Blocking reads
/// on tokio's blocking pool: a terminal is not a socket or pipe its reactor could watch
/// without `unsafe`.)
pub(crate) fn master_io(master: OwnedFd) -> io::Result<(tokio::fs::File, tokio::fs::File)> {
    let reader = std::fs::File::from(master.try_clone()?);
    let writer = std::fs::File::from(master);
    Ok((
        tokio::fs::File::from_std(reader),
        tokio::fs::File::from_std(writer),
    ))
}
