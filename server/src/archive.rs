//! A minimal tar (ustar) writer for the customer's data archive: regular files only, in memory
//! (an archive holds one person's data).

/// Builds a tar archive of `(name, content)` entries. Names are ASCII paths under 100 bytes.
pub fn tar(entries: &[(String, Vec<u8>)], mtime_secs: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, content) in entries {
        let mut h = [0u8; 512];
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '\\')
            .take(99)
            .collect();
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
            let s = format!("{:0width$o}\0", v, width = len - 1);
            h[at..at + len].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, 0o644);
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, content.len() as u64);
        octal(&mut h, 136, 12, mtime_secs);
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(content);
        let pad = (512 - content.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_tar_reads_what_we_write() {
        let data = tar(
            &[
                ("data.json".into(), b"{\"a\":1}".to_vec()),
                ("documents/report.pdf".into(), vec![7u8; 1000]),
            ],
            1_700_000_000,
        );
        assert_eq!(data.len() % 512, 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar");
        std::fs::write(&path, &data).unwrap();
        let list = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            list.status.success(),
            "{}",
            String::from_utf8_lossy(&list.stderr)
        );
        let text = String::from_utf8_lossy(&list.stdout);
        assert!(
            text.contains("data.json")
                && text.contains("documents/report.pdf")
                && text.contains("1000"),
            "{text}"
        );
    }
}
