//! Glob patterns as `replace_match` takes them (contrib uses gobwas/glob without separators),
//! translated to an anchored regex once at parse time.
//!
//! `*` any run of characters, `?` one character, `[abc]` / `[a-z]` / `[!abc]` a class,
//! `{a,b}` alternatives (each itself a glob), `\c` the character `c`.

/// Translates `glob` to regex source, or says what is malformed.
pub(crate) fn to_regex(glob: &str) -> Result<String, String> {
    let chars: Vec<char> = glob.chars().collect();
    let mut pos = 0;
    let body = translate(&chars, &mut pos, false)?;
    if pos != chars.len() {
        return Err(format!(
            "unexpected {:?} at character {}",
            chars[pos],
            pos + 1
        ));
    }
    Ok(format!("^(?s:{body})$"))
}

/// Translates until the end, or (inside braces) until an unmatched `,` or `}`.
fn translate(chars: &[char], pos: &mut usize, in_braces: bool) -> Result<String, String> {
    let mut out = String::new();
    while let Some(&c) = chars.get(*pos) {
        match c {
            ',' | '}' if in_braces => return Ok(out),
            '*' => {
                out.push_str(".*");
                *pos += 1;
            }
            '?' => {
                out.push('.');
                *pos += 1;
            }
            '\\' => {
                let Some(&next) = chars.get(*pos + 1) else {
                    return Err("trailing \\".to_string());
                };
                out.push_str(&regex::escape(&next.to_string()));
                *pos += 2;
            }
            '[' => {
                *pos += 1;
                out.push_str(&class(chars, pos)?);
            }
            '{' => {
                *pos += 1;
                let mut alternatives = Vec::new();
                loop {
                    alternatives.push(translate(chars, pos, true)?);
                    match chars.get(*pos) {
                        Some(',') => *pos += 1,
                        Some('}') => {
                            *pos += 1;
                            break;
                        }
                        _ => return Err("unclosed {".to_string()),
                    }
                }
                out.push_str(&format!("(?:{})", alternatives.join("|")));
            }
            other => {
                out.push_str(&regex::escape(&other.to_string()));
                *pos += 1;
            }
        }
    }
    Ok(out)
}

/// A `[...]` class after its `[`.
fn class(chars: &[char], pos: &mut usize) -> Result<String, String> {
    let mut out = String::from("[");
    if chars.get(*pos) == Some(&'!') {
        out.push('^');
        *pos += 1;
    }
    let mut empty = true;
    while let Some(&c) = chars.get(*pos) {
        *pos += 1;
        match c {
            ']' if !empty => {
                out.push(']');
                return Ok(out);
            }
            '-' if !empty => out.push('-'),
            c => {
                if matches!(c, '\\' | '[' | ']' | '^' | '-' | '&' | '~') {
                    out.push('\\');
                }
                out.push(c);
            }
        }
        empty = false;
    }
    Err("unclosed [".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(glob: &str, s: &str) -> bool {
        to_regex(glob)
            .ok()
            .and_then(|r| regex::Regex::new(&r).ok())
            .is_some_and(|r| r.is_match(s))
    }

    #[test]
    fn glob_semantics() {
        assert!(matches("/user/*/list/*", "/user/123/list/456"));
        assert!(!matches("/user/*/list/*", "/users/123/list/456x/"));
        assert!(matches("/user/*/list/*", "/user/1/2/list/3"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "abbc"));
        assert!(matches("[a-c]x", "bx"));
        assert!(matches("[!a-c]x", "dx"));
        assert!(!matches("[!a-c]x", "ax"));
        assert!(matches("{get,post} /*", "post /x"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "axb"));
        assert!(matches(r"a\*", "a*"));
        assert!(to_regex("{a,b").is_err());
        assert!(to_regex("[ab").is_err());
    }
}
