//! Go RE2 patterns for the `regex` crate. The syntaxes agree except that Go's Perl classes are
//! ASCII (`\d` is `[0-9]`, `\w` is `[0-9A-Za-z_]`, `\s` is `[\t\n\f\r ]`) where the `regex`
//! crate's are Unicode-aware; this rewrites those six escapes to the ASCII sets (still matching
//! any character outside them when negated, as Go does). Anything else is left to the `regex`
//! crate, which rejects what it does not know (e.g. Go's `\Q…\E`) with a parse error.

/// `pattern` with `\d \D \w \W \s \S` replaced by Go's ASCII meaning, inside and outside
/// character classes.
pub(crate) fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let mut class_depth = 0usize;
    // True right after a class opens (and after its `^`), where `]` is a literal.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                match ascii_class(e) {
                    Some(set) => out.push_str(set),
                    None => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' => {
                out.push('[');
                if class_depth > 0 && chars.peek() == Some(&':') {
                    // A POSIX class `[:alpha:]` inside a class: copy it through `:]`.
                    for p in chars.by_ref() {
                        out.push(p);
                        if p == ']' {
                            break;
                        }
                    }
                    continue;
                }
                class_depth += 1;
                if chars.peek() == Some(&'^') {
                    out.extend(chars.next());
                }
                class_start = true;
            }
            ']' if class_depth > 0 && !at_class_start => {
                class_depth -= 1;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// The ASCII set for a Perl class letter, written so that it is valid inside or outside a
/// character class (the `regex` crate accepts nested classes).
fn ascii_class(letter: char) -> Option<&'static str> {
    Some(match letter {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        's' => r"[\t\n\f\r ]",
        'S' => r"[^\t\n\f\r ]",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_match(pattern: &str, s: &str) -> bool {
        regex::Regex::new(&translate(pattern)).is_ok_and(|r| r.is_match(s))
    }

    #[test]
    fn perl_classes_are_ascii() {
        assert!(is_match(r"^\d+$", "123"));
        assert!(
            !is_match(r"^\d+$", "١٢٣"),
            "Arabic-Indic digits are not \\d in Go"
        );
        assert!(is_match(r"^\D$", "١"));
        assert!(!is_match(r"^\w$", "é"));
        assert!(is_match(r"^\W$", "é"));
        assert!(!is_match(r"^\s$", "\u{a0}"));
        assert!(is_match(r"^[\d.]+$", "1.2"));
        assert!(is_match(r"^[^\s]+$", "abc"));
        assert!(is_match(r"^[]\d]+$", "]1"));
        assert!(is_match(r"^[[:alpha:]\d]+$", "a1"));
        assert!(is_match(r"\\d", r"\d"), "an escaped backslash stays one");
        assert!(is_match(r"password\=[^\s]*(\s?)", "password=x y"));
    }
}
