//! The host's pressure stall information: `/proc/pressure/{cpu,memory,io}`
//! (the share of time some or all tasks waited for the resource, averaged
//! over 10 and 60 s). `pressure` rules act on it. A kernel without PSI (or a
//! file gestor cannot read) gives nothing, never zero.

use serde::Serialize;
use std::path::Path;

/// One line of a pressure file: percentages of time, 0..100.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PsiAverages {
    pub avg10: f64,
    pub avg60: f64,
}

/// One pressure file: its `some` and `full` lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PsiFile {
    pub some: Option<PsiAverages>,
    pub full: Option<PsiAverages>,
}

/// The host's three pressure files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HostPressure {
    pub cpu: PsiFile,
    pub memory: PsiFile,
    pub io: PsiFile,
}

/// Parses one pressure file (`some avg10=1.23 avg60=0.50 avg300=0.10
/// total=123`, then a `full` line). A line that does not parse is absent.
pub fn parse(text: &str) -> PsiFile {
    let mut file = PsiFile::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let which = fields.next();
        let (mut avg10, mut avg60) = (None, None);
        for field in fields {
            if let Some((k, v)) = field.split_once('=') {
                let v: Option<f64> = v.parse().ok().filter(|v: &f64| v.is_finite());
                match k {
                    "avg10" => avg10 = v,
                    "avg60" => avg60 = v,
                    _ => {}
                }
            }
        }
        let averages = avg10
            .zip(avg60)
            .map(|(avg10, avg60)| PsiAverages { avg10, avg60 });
        match which {
            Some("some") => file.some = averages,
            Some("full") => file.full = averages,
            _ => {}
        }
    }
    file
}

/// Reads `<procfs>/pressure/{cpu,memory,io}`; a missing file reads as no
/// lines. Blocking, but these are small kernel files.
pub fn read(procfs: &Path) -> HostPressure {
    let file = |name: &str| {
        std::fs::read_to_string(procfs.join("pressure").join(name))
            .map(|t| parse(&t))
            .unwrap_or_default()
    };
    HostPressure {
        cpu: file("cpu"),
        memory: file("memory"),
        io: file("io"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lines_are_read_and_bad_ones_are_absent() {
        let f = parse(
            "some avg10=12.50 avg60=3.25 avg300=1.00 total=123456\n\
             full avg10=0.00 avg60=0.10 avg300=0.00 total=1\n",
        );
        assert_eq!(
            f.some,
            Some(PsiAverages {
                avg10: 12.5,
                avg60: 3.25
            })
        );
        assert_eq!(
            f.full,
            Some(PsiAverages {
                avg10: 0.0,
                avg60: 0.1
            })
        );
        let f = parse("some avg10=x avg60=1\nfull\n");
        assert_eq!(f, PsiFile::default());
    }

    #[test]
    fn this_hosts_files_read() {
        // /proc/pressure exists on this machine's kernel (DESIGN.md).
        let p = read(Path::new("/proc"));
        assert!(p.cpu.some.is_some(), "{p:?}");
        assert!(read(Path::new("/nonexistent")).cpu.some.is_none());
    }
}
