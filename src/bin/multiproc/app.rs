//! The commands (everything but `main`; see `main.rs`).

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use multiproc::region::{DetailValue, RegionInfo};
use multiproc::{Error, Region};

/// Inspect and clean up multiproc's named shared-memory regions.
#[derive(Debug, Parser)]
#[command(
    name = "multiproc",
    version,
    about = "List, inspect and remove multiproc's named shared-memory regions (/dev/shm)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the regions under /dev/shm (files without the crate's magic are
    /// never shown).
    Ls {
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Only names starting with this (leading `/` included).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Show one or more regions in full: kind, type identity, geometry, length,
    /// participants, creator, cleanup policy, owner and mode.
    Inspect {
        /// Region names, such as `/jobs`.
        #[arg(required = true)]
        names: Vec<String>,
        /// JSON (an object per region; an array when several) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove region names (processes that have them mapped keep working).
    Rm {
        /// Names to remove.
        #[arg(required = true)]
        names: Vec<String>,
        /// Also remove names that are not multiproc regions.
        #[arg(long)]
        force: bool,
    },
    /// Remove the regions whose participants are all dead, or whose cleanup
    /// policy says they should be gone; asks first unless `--yes`.
    Gc {
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Only show what would be removed.
        #[arg(long, short = 'n')]
        dry_run: bool,
        /// Only names starting with this (leading `/` included).
        #[arg(long)]
        prefix: Option<String>,
    },
}

/// Parses the arguments and runs the command.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { json, prefix } => ls(json, prefix.as_deref()),
        Command::Inspect { names, json } => inspect(&names, json),
        Command::Rm { names, force } => rm(&names, force),
        Command::Gc {
            yes,
            dry_run,
            prefix,
        } => gc(yes, dry_run, prefix.as_deref()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // `multiproc ls | head`: the reader has what it wanted.
        Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("multiproc: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A listed name and what inspecting it gave.
type Listed = (String, Result<RegionInfo, Error>);

/// The regions under /dev/shm, filtered by `prefix`, each inspected.
fn regions(prefix: Option<&str>) -> Result<Vec<Listed>, Error> {
    Ok(Region::list()?
        .into_iter()
        .filter(|n| prefix.is_none_or(|p| n.starts_with(p)))
        .map(|n| {
            let info = Region::inspect(&n);
            (n, info)
        })
        .collect())
}

/// One word for a region's state, as `ls` shows it.
fn status(info: &RegionInfo) -> &'static str {
    if info.expired() {
        "expired"
    } else if info.abandoned() {
        "abandoned"
    } else if info.participants.is_empty() {
        "idle"
    } else {
        "in-use"
    }
}

fn ls(json: bool, prefix: Option<&str>) -> Result<bool, Error> {
    let all = regions(prefix)?;
    let mut out = std::io::stdout().lock();
    if json {
        let items: Vec<String> = all
            .iter()
            .map(|(n, r)| match r {
                Ok(info) => info_json(info),
                Err(e) => format!(
                    "{{\"name\":{},\"error\":{}}}",
                    json_str(n),
                    json_str(&e.to_string())
                ),
            })
            .collect();
        writeln!(out, "[{}]", items.join(",")).map_err(Error::Io)?;
        return Ok(true);
    }
    let mut rows = vec![
        [
            "NAME", "KIND", "SIZE", "LEN", "CAP", "PROCS", "CREATOR", "CLEANUP", "MODE", "OWNER",
            "STATUS",
        ]
        .map(str::to_owned),
    ];
    let mut users = Users::load();
    for (n, r) in &all {
        rows.push(match r {
            Ok(i) => [
                n.clone(),
                text(&i.kind),
                human_size(i.size),
                opt(i.len),
                opt(i.capacity),
                format!(
                    "{}/{}",
                    i.participants.iter().filter(|p| p.alive).count(),
                    i.participants.len()
                ),
                format!(
                    "{}{}",
                    i.creator_pid,
                    if i.creator_alive { "" } else { " (dead)" }
                ),
                i.cleanup.to_string(),
                format!("{:04o}", i.mode),
                users.name(i.uid),
                status(i).to_owned(),
            ],
            Err(e) => {
                let mut row: [String; 11] = Default::default();
                row[0] = n.clone();
                row[1] = "?".into();
                row[10] = format!("unreadable: {e}");
                row
            }
        });
    }
    write_table(&mut out, &rows).map_err(Error::Io)?;
    Ok(true)
}

fn write_table<const N: usize>(out: &mut impl Write, rows: &[[String; N]]) -> std::io::Result<()> {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn inspect(names: &[String], json: bool) -> Result<bool, Error> {
    let mut out = std::io::stdout().lock();
    let mut ok = true;
    let mut items = Vec::new();
    let mut users = Users::load();
    for (k, n) in names.iter().enumerate() {
        match Region::inspect(n) {
            Ok(info) if json => items.push(info_json(&info)),
            Ok(info) => {
                if k > 0 {
                    writeln!(out).map_err(Error::Io)?;
                }
                write_info(&mut out, &info, &mut users).map_err(Error::Io)?;
            }
            Err(e) => {
                eprintln!("multiproc: {n}: {e}");
                ok = false;
            }
        }
    }
    if json {
        if names.len() > 1 {
            writeln!(out, "[{}]", items.join(",")).map_err(Error::Io)?;
        } else if let Some(one) = items.pop() {
            writeln!(out, "{one}").map_err(Error::Io)?;
        }
    }
    Ok(ok)
}

/// Each recorded element identity with its role: one element, or a dict's
/// key and value.
fn element_roles(
    elements: &[multiproc::identity::ElementId],
) -> impl Iterator<Item = (&'static str, &multiproc::identity::ElementId)> {
    let roles: &[&str] = if elements.len() == 2 {
        &["key", "value"]
    } else {
        &["element"]
    };
    roles.iter().copied().zip(elements.iter())
}

fn write_info(out: &mut impl Write, i: &RegionInfo, users: &mut Users) -> std::io::Result<()> {
    let alive = i.participants.iter().filter(|p| p.alive).count();
    writeln!(out, "name:         {}", i.name)?;
    writeln!(out, "kind:         {}", text(&i.kind))?;
    writeln!(out, "fingerprint:  {:#018x}", i.fingerprint)?;
    for (role, e) in element_roles(&i.identity.elements) {
        writeln!(out, "{:<14}{e}", format!("{role}:"))?;
    }
    writeln!(out, "version:      {}", i.version)?;
    writeln!(
        out,
        "size:         {} bytes (payload {} bytes, {} participant slots)",
        i.size, i.payload_size, i.participant_slots
    )?;
    if let Some(c) = i.capacity {
        writeln!(out, "capacity:     {c}")?;
    }
    if let Some(e) = i.element_size {
        writeln!(out, "element size: {e} bytes")?;
    }
    if let Some(l) = i.len {
        writeln!(out, "len:          {l}")?;
    }
    for d in &i.details {
        let label = format!("{}:", d.name.replace('_', " "));
        let value = match &d.value {
            DetailValue::Text(t) => text(t),
            v => v.to_string(),
        };
        writeln!(out, "{label:<13} {value}")?;
    }
    writeln!(
        out,
        "creator:      pid {} ({})",
        i.creator_pid,
        if i.creator_alive { "alive" } else { "dead" }
    )?;
    writeln!(out, "created:      {}", utc(i.created_at))?;
    writeln!(out, "cleanup:      {}", i.cleanup)?;
    writeln!(
        out,
        "owner:        {} (uid {}), gid {}, mode {:04o}",
        users.name(i.uid),
        i.uid,
        i.gid,
        i.mode
    )?;
    writeln!(out, "status:       {}", status(i))?;
    writeln!(
        out,
        "participants: {} ({} alive)",
        i.participants.len(),
        alive
    )?;
    for p in &i.participants {
        writeln!(
            out,
            "  [{}] pid {:<8} {:<5}  joined {}",
            p.index,
            p.pid,
            if p.alive { "alive" } else { "dead" },
            utc(p.joined_at)
        )?;
    }
    Ok(())
}

fn rm(names: &[String], force: bool) -> Result<bool, Error> {
    let mut ok = true;
    for n in names {
        let outcome = match Region::is_region(n) {
            Ok(true) => Region::unlink(n),
            // With --force, a name that cannot even be read as a region (a
            // symlink, which regions are never opened through, or one we may
            // not read) is removed as well: unlinking never follows it.
            Ok(false) | Err(_) if force => Region::unlink(n),
            Ok(false) => {
                eprintln!(
                    "multiproc: {n}: not a multiproc region (use --force to remove it anyway)"
                );
                ok = false;
                continue;
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => println!("removed {n}"),
            Err(e) => {
                eprintln!("multiproc: {n}: {e}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// Why `gc` removes a region.
fn reason(i: &RegionInfo) -> String {
    if i.abandoned() {
        format!("no live participant, {} dead", i.participants.len())
    } else {
        format!(
            "creator pid {} dead (cleanup: {})",
            i.creator_pid, i.cleanup
        )
    }
}

fn gc(yes: bool, dry_run: bool, prefix: Option<&str>) -> Result<bool, Error> {
    let doomed: Vec<RegionInfo> = regions(prefix)?
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .filter(RegionInfo::collectable)
        .collect();
    if doomed.is_empty() {
        println!("nothing to collect");
        return Ok(true);
    }
    for i in &doomed {
        println!(
            "{} {} ({}, {})",
            if dry_run { "would remove" } else { "remove" },
            i.name,
            text(&i.kind),
            reason(i)
        );
    }
    if dry_run {
        return Ok(true);
    }
    if !yes {
        match confirm(doomed.len())? {
            Some(true) => {}
            Some(false) => {
                println!("nothing removed");
                return Ok(true);
            }
            None => {
                // A script that forgot `--yes` must not read success.
                println!("nothing removed");
                eprintln!("multiproc: no answer on stdin; pass --yes to remove without asking");
                return Ok(false);
            }
        }
    }
    let mut ok = true;
    for i in &doomed {
        match Region::collect(i) {
            Ok(true) => println!("removed {}", i.name),
            Ok(false) => println!("kept {} (in use or replaced since it was listed)", i.name),
            Err(e) => {
                eprintln!("multiproc: {}: {e}", i.name);
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// Asks on stderr, reads a line from stdin: only `y` or `yes` confirms;
/// `None` when stdin has nothing to read (closed, or empty).
fn confirm(n: usize) -> Result<Option<bool>, Error> {
    eprint!("remove {n} region{}? [y/N] ", if n == 1 { "" } else { "s" });
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(matches!(
        line.trim(),
        "y" | "Y" | "yes" | "YES" | "Yes"
    )))
}

// ---------------------------------------------------------------------------
// Formatting

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Untrusted text for a terminal: control characters (escape sequences
/// included) are shown escaped.
fn text(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch (0: unknown).
fn utc(secs: u64) -> String {
    if secs == 0 {
        return "unknown".into();
    }
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01, counting in 400-year
/// eras of 146097 days that start on March 1st (so the leap day is last).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..365, from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..11
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// User names from /etc/passwd (numbers when it has none).
struct Users(Vec<(u32, String)>);

impl Users {
    fn load() -> Users {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        Users(
            passwd
                .lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    let uid = f.nth(1)?.parse().ok()?;
                    Some((uid, name.to_owned()))
                })
                .collect(),
        )
    }

    fn name(&mut self, uid: u32) -> String {
        self.0
            .iter()
            .find(|(u, _)| *u == uid)
            .map_or_else(|| uid.to_string(), |(_, n)| text(n))
    }
}

// ---------------------------------------------------------------------------
// JSON, written by hand (no serde_json dependency for one command)

/// A JSON string literal: quotes, backslashes and every control character
/// escaped, everything else kept as UTF-8.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

fn info_json(i: &RegionInfo) -> String {
    let details: Vec<String> = i
        .details
        .iter()
        .map(|d| {
            let v = match &d.value {
                DetailValue::Int(v) => v.to_string(),
                DetailValue::Bool(v) => v.to_string(),
                DetailValue::Text(t) => json_str(t),
            };
            format!("[{},{v}]", json_str(d.name))
        })
        .collect();
    let participants: Vec<String> = i
        .participants
        .iter()
        .map(|p| {
            format!(
                "{{\"index\":{},\"pid\":{},\"generation\":{},\"alive\":{},\"joined_at\":{}}}",
                p.index, p.pid, p.generation, p.alive, p.joined_at
            )
        })
        .collect();
    let fields = [
        ("name", json_str(&i.name)),
        ("kind", json_str(&i.kind)),
        ("fingerprint", json_str(&format!("{:#018x}", i.fingerprint))),
        (
            "elements",
            format!(
                "[{}]",
                element_roles(&i.identity.elements)
                    .map(|(role, e)| format!(
                        "{{\"role\":{},\"size\":{},\"align\":{},\"type_id\":{}}}",
                        json_str(role),
                        e.size,
                        e.align,
                        e.type_id
                    ))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        ("version", i.version.to_string()),
        ("size", i.size.to_string()),
        ("payload_size", i.payload_size.to_string()),
        ("participant_slots", i.participant_slots.to_string()),
        ("capacity", json_opt(i.capacity)),
        ("element_size", json_opt(i.element_size)),
        ("len", json_opt(i.len)),
        ("details", format!("[{}]", details.join(","))),
        ("participants", format!("[{}]", participants.join(","))),
        ("creator_pid", i.creator_pid.to_string()),
        ("creator_alive", i.creator_alive.to_string()),
        ("created_at", i.created_at.to_string()),
        ("cleanup", json_str(i.cleanup.as_str())),
        ("uid", i.uid.to_string()),
        ("gid", i.gid.to_string()),
        ("mode", json_str(&format!("{:04o}", i.mode))),
        ("status", json_str(status(i))),
        ("collectable", i.collectable().to_string()),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_str(k)))
        .collect();
    format!("{{{}}}", body.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(1), "1970-01-01 00:00:01 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
    }

    #[test]
    fn json_strings_escape_everything_a_parser_rejects() {
        assert_eq!(
            json_str("a\"b\\c\n\u{1}\u{1b}é"),
            "\"a\\\"b\\\\c\\n\\u0001\\u001bé\""
        );
    }

    #[test]
    fn terminal_text_escapes_control_characters() {
        assert_eq!(text("Queue\u{1b}[2J\n"), "Queue\\u{1b}[2J\\n");
    }
}
