//! Structured logs with tracing: human-readable by default, JSON by setting. Spans carry the
//! request id; fields never hold passwords, tokens, session ids or full email addresses.
//!
//! Email addresses can still reach a log line inside an error from elsewhere (an SMTP server's
//! reply, a CRM's validation message), so every line passes through [`mask_emails`] on its way
//! out: whatever wrote it, no full address lands in the log.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber, writing to standard output. Safe to call more than once
/// (later calls do nothing).
pub fn init(format: &str, level: &str) {
    init_with(format, level, io::stdout, true);
}

/// Installs the global subscriber writing to `writer` (tests send it to a file). Every line is
/// masked with [`mask_emails`].
pub fn init_with<W>(format: &str, level: &str, writer: W, ansi: bool)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let writer = Masked(writer);
    let _ = if format == "json" {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(ansi)
                    .with_writer(writer),
            )
            .try_init()
    };
}

/// A [`MakeWriter`] whose writers mask email addresses. The formatter hands each event to the
/// writer in one `write_all`, so an address is never split across calls.
struct Masked<W>(W);

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for Masked<W> {
    type Writer = MaskedWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskedWriter(self.0.make_writer())
    }
}

struct MaskedWriter<W>(W);

impl<W: Write> Write for MaskedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.contains(&b'@') {
            return self.0.write(buf);
        }
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(mask_emails(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-' | '\'')
}

fn is_domain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-')
}

/// Replaces every email address in `text` by its masked form (`jo***@example.com`, as shown in
/// lists): the first two characters of the local part are kept, the domain stays so that an
/// operator can still tell which provider refused a message.
pub fn mask_emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let before = &rest[..at];
        let after = &rest[at + 1..];
        let local_len = before
            .chars()
            .rev()
            .take_while(|c| is_local_char(*c))
            .map(char::len_utf8)
            .sum::<usize>();
        let domain_len = after
            .chars()
            .take_while(|c| is_domain_char(*c))
            .map(char::len_utf8)
            .sum::<usize>();
        let domain = after[..domain_len].trim_end_matches(['.', '-']);
        let is_address = local_len > 0 && domain.contains('.') && !domain.starts_with('.');
        if is_address {
            let local = &before[before.len() - local_len..];
            out.push_str(&before[..before.len() - local_len]);
            out.extend(local.chars().take(2));
            out.push_str("***@");
            out.push_str(domain);
            rest = &after[domain.len()..];
        } else {
            out.push_str(before);
            out.push('@');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_wherever_they_appear() {
        assert_eq!(
            mask_emails("550 5.1.1 <nomvula.zm@example.com>: recipient rejected"),
            "550 5.1.1 <no***@example.com>: recipient rejected"
        );
        assert_eq!(
            mask_emails(
                r#"{"message":"Email address typo@example.invalid is invalid","to":"a.b+c@mail.co.za."}"#
            ),
            r#"{"message":"Email address ty***@example.invalid is invalid","to":"a.***@mail.co.za."}"#
        );
        assert_eq!(
            mask_emails("two: x@y.org, o'neil@z.net"),
            "two: x***@y.org, o'***@z.net"
        );
    }

    #[test]
    fn other_at_signs_are_left_alone() {
        for s in [
            "@ the desk",
            "user@localhost",
            "a @ b.c",
            "no at sign",
            "name@",
            "@example.com",
            "ünï@",
        ] {
            assert_eq!(mask_emails(s), s);
        }
    }

    #[test]
    fn the_writer_masks_what_the_formatter_writes() {
        let mut w = MaskedWriter(Vec::new());
        w.write_all(b"sent to sipho@example.com\n").unwrap();
        w.write_all(b"plain line\n").unwrap();
        assert_eq!(
            String::from_utf8(w.0).unwrap(),
            "sent to si***@example.com\nplain line\n"
        );
    }
}
