//! Reading the process table from `/proc`, as both sandboxes need it: a build stops every
//! process its command started, the supervisor finds an instance's processes, its memory and
//! what a crashed server left.

/// The fields of `/proc/<pid>/stat` wharf reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    pub ppid: i32,
    pub pgrp: i32,
    /// The session: a terminal one-off's jobs share it across process groups.
    pub session: i32,
    /// Exited and not yet reaped (`Z`) or dead (`X`): it no longer runs.
    pub zombie: bool,
    /// Field 22: clock ticks after boot; with the pid it names a process uniquely.
    pub start_time: u64,
}

/// Parses `/proc/<pid>/stat`. The command name may hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat(pid: i32, stat: &str) -> Option<ProcStat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let state = *fields.first()?;
    Some(ProcStat {
        pid,
        comm,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        zombie: state == "Z" || state == "X",
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Process `pid`, if it exists.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &stat)
}

/// Every process now.
pub fn process_table() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        // A process that exits between listing and reading is simply not in the table.
        proc_stat(pid)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name_is_parsed() {
        let stat = "1234 (we) (ird name) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 \
                    98765 1000 100 18446744073709551615";
        let e = parse_stat(1234, stat).unwrap();
        assert_eq!(e.comm, "we) (ird name");
        assert_eq!(
            (e.ppid, e.pgrp, e.session, e.zombie, e.start_time),
            (1, 1234, 1234, false, 98765)
        );
        assert!(parse_stat(7, "7 (sh) S 1").is_none());
    }

    #[test]
    fn zombies_are_recognised() {
        let stat = "7 (sh) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert!(parse_stat(7, stat).unwrap().zombie);
    }

    #[test]
    fn own_process_is_found() {
        let me = proc_stat(std::process::id() as i32).unwrap();
        assert!(!me.zombie);
        assert!(me.start_time > 0);
        assert!(process_table().iter().any(|p| p.pid == me.pid));
    }
}
