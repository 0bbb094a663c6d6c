//! The layering, checked: the sans-IO core (`session/`, `protocol/`, `relay/`, and
//! the buffer they share) names no poll, no socket type, no thread, no
//! clock and no system randomness; the protocol does not import the command
//! line, nor does the driver; the front-ends take no constants from the driver.

use std::fs;
use std::path::Path;

const FORBIDDEN_IN_CORE: &[&str] = &[
    "mio",
    "std::net",
    "std::thread",
    "Instant::now",
    "SystemTime",
    "SystemRandom",
    "OsRng",
    "getrandom",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code lines of `path`, without comments.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("").to_string()))
        .collect()
}

fn offenders(dirs: &[&str], words: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for d in dirs {
        let p = root.join(d);
        if p.is_dir() {
            rust_files(&p, &mut files);
        } else {
            files.push(p);
        }
    }
    let mut found = Vec::new();
    // Tests may use the clock; the core itself may not.
    files.retain(|f| !f.components().any(|c| c.as_os_str() == "tests"));
    for f in files {
        for (n, line) in code_lines(&f) {
            for w in words {
                if line.contains(w) {
                    found.push(format!("{}:{n}: {w}", f.display()));
                }
            }
        }
    }
    found
}

#[test]
fn the_core_does_no_io_and_keeps_no_clock() {
    let found = offenders(
        &["session", "protocol", "relay", "buf.rs"],
        FORBIDDEN_IN_CORE,
    );
    assert!(
        found.is_empty(),
        "I/O in the sans-IO core:\n{}",
        found.join("\n")
    );
}

#[test]
fn imports_only_point_down() {
    let up = offenders(
        &["protocol", "session", "relay", "buf.rs"],
        &["crate::cli", "crate::driver", "crate::frontend"],
    );
    assert!(up.is_empty(), "an upward import:\n{}", up.join("\n"));
    let up = offenders(&["driver"], &["crate::frontend", "crate::cli"]);
    assert!(
        up.is_empty(),
        "the driver names a front-end or the command line (main maps the \
         command line onto the driver's own config types):\n{}",
        up.join("\n")
    );
}

/// Words that name an operating system or call one directly.
const PLATFORM: &[&str] = &[
    "crate::sys",
    "libc::",
    "windows_sys",
    "std::os::",
    "unsafe",
    "cfg(unix",
    "cfg(windows",
    "target_os",
];

#[test]
fn the_core_names_no_operating_system() {
    let found = offenders(&["session", "protocol", "relay", "buf.rs"], PLATFORM);
    assert!(
        found.is_empty(),
        "platform code in the core:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_platform_area_calls_the_system() {
    // Everything but src/sys/ (and the vendored editor, not ours) goes
    // through sys for anything beyond std.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let dirs: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "sys" && n != "testkit.rs")
        .collect();
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let found = offenders(&dirs, &["libc::", "windows_sys", "unsafe {", "unsafe fn"]);
    assert!(
        found.is_empty(),
        "an OS call outside src/sys/:\n{}",
        found.join("\n")
    );
}
