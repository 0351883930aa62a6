//! Values that reach a log line from outside (model names typed by clients, upstream error
//! messages) are written escaped: a newline or an ANSI escape in them could otherwise forge a
//! log line or repaint a terminal.

use std::fmt;

/// Displays a string with every control character escaped (`\n`, `\r`, `\t`, `\u{1b}`…) and
/// backslashes doubled, so one value is always one unambiguous piece of one line.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if !s.chars().any(|c| c.is_control() || c == '\\') {
            return f.write_str(s);
        }
        for c in s.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    #[test]
    fn control_characters_cannot_break_or_colour_a_line() {
        let forged = "gpt\n2026-12-02T00:00:00Z INFO request done outcome=ok\u{1b}[31m\\";
        let shown = Escaped(forged).to_string();
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(
            shown,
            "gpt\\n2026-12-02T00:00:00Z INFO request done outcome=ok\\u{1b}[31m\\\\"
        );
        assert_eq!(
            Escaped("claude-sonnet-4-5").to_string(),
            "claude-sonnet-4-5"
        );
    }
}
