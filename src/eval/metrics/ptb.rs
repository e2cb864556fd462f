//! The caption tokenisation of pycocoevalcap: Stanford PTBTokenizer 3.4.1 (`-preserveLines
//! -lowerCase`), then the tokens of pycocoevalcap's `PUNCTUATIONS` list dropped.
//!
//! This is a re-implementation of the PTB lexer rules that captions actually exercise (clitics,
//! possessives, abbreviations and acronyms, numbers, hyphenated words, brackets, symbols, Unicode
//! dashes and quotes), checked token for token against the Java tokenizer on
//! `tests/data/eval/ptb.json`. Two quirks of the reference are kept on purpose: brackets become
//! `-lrb-`, `-rsb-`, ... and survive (the removal list is upper-case, the tokens are lower-cased),
//! and runs like `!!!` or `!?` survive (only single marks are in the list).

/// Tokens pycocoevalcap removes after tokenisation.
const REMOVED: [&str; 13] = [
    "''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";",
];

/// Words that keep their final period (PTB's abbreviation list, the part captions meet).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "prof", "mt", "ft", "vs", "etc", "inc", "ltd", "co",
    "corp", "ave", "blvd", "rd", "gen", "gov", "sen", "rep", "rev", "capt", "col", "lt", "sgt",
    "jan", "feb", "mar", "apr", "aug", "sept", "oct", "nov", "dec", "messrs", "mssrs", "esq", "sq",
];

/// Abbreviations that keep their period only before a number (`No. 5`, `fig. 3`).
const NUMBER_ABBREVIATIONS: &[&str] = &["no", "fig", "figs", "nos"];

/// Contracted forms the PTB lexer splits in two (`cannot` -> `can not`).
const SPLIT_WORDS: [(&str, usize); 10] = [
    ("cannot", 3),
    ("gonna", 3),
    ("gotta", 3),
    ("wanna", 3),
    ("lemme", 3),
    ("gimme", 3),
    ("'tis", 2),
    ("'twas", 2),
    ("d'ye", 2),
    ("more'n", 4),
];

/// Clitics split off the end of a word.
const CLITICS: [&str; 7] = ["n't", "'s", "'m", "'d", "'ll", "'re", "'ve"];

/// pycocoevalcap's tokenisation of one caption: lower-cased tokens joined by single spaces.
pub fn tokenize(caption: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let chunks: Vec<String> = caption
        .split_whitespace()
        .map(normalize_chars)
        .flat_map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let next = chunks.get(i + 1).and_then(|c| c.chars().next());
        lex_chunk(chunk, next, &mut out);
    }
    // A number and a fraction after it are one token, joined by a no-break space (20 1/2).
    let fraction = |t: &str| {
        t.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && (a.chars().chain(b.chars())).all(|c| c.is_ascii_digit())
        })
    };
    let mut joined: Vec<String> = Vec::with_capacity(out.len());
    for t in out {
        match joined.last_mut() {
            Some(prev)
                if fraction(&t) && !prev.is_empty() && prev.chars().all(|c| c.is_ascii_digit()) =>
            {
                prev.push('\u{a0}');
                prev.push_str(&t);
            }
            _ => joined.push(t),
        }
    }
    let mut out = joined;
    out.retain(|t| !REMOVED.contains(&t.as_str()));
    out.join(" ")
}

/// Maps the Unicode punctuation the lexer normalises onto its ASCII spelling.
fn normalize_chars(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{2014}' | '\u{2013}' | '\u{2012}' | '\u{2015}' => o.push_str(" -- "),
            '\u{2026}' => o.push_str(" ... "),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{00AB}' | '\u{00BB}' => o.push('"'),
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' => o.push('\''),
            '\u{00A0}' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Splits one whitespace-free chunk into PTB tokens (lower-cased); `next` is the first
/// character of the following chunk.
fn lex_chunk(chunk: &str, next: Option<char>, out: &mut Vec<String>) {
    let chars: Vec<char> = chunk.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let (tok, end) = next_token(&chars, i, next);
        push_word(&tok, out);
        i = end;
    }
}

/// The longest token starting at `i`, as the lexer would match it.
fn next_token(c: &[char], i: usize, next: Option<char>) -> (String, usize) {
    let n = c.len();
    let rest = |j: usize| -> String { c[i..j].iter().collect() };
    let ch = c[i];
    // SGML-like tags survive whole (`<noise>`).
    if ch == '<' {
        if let Some(end) = (i + 1..n).find(|&j| c[j] == '>') {
            if end > i + 1 && (c[i + 1].is_alphabetic() || c[i + 1] == '/') {
                return (rest(end + 1), end + 1);
            }
        }
    }
    // URLs survive whole.
    if ch.is_ascii_alphabetic() {
        let head: String = c[i..n.min(i + 8)].iter().collect::<String>().to_lowercase();
        if head.starts_with("http://") || head.starts_with("https://") || head.starts_with("www.") {
            return (rest(n), n);
        }
    }
    // Runs of the same kind of punctuation.
    if ch == '.' {
        let j = run_end(c, i, |x| x == '.');
        return (if j - i >= 2 { "...".into() } else { ".".into() }, j);
    }
    if ch == '-' {
        let j = run_end(c, i, |x| x == '-');
        // A sign before a number belongs to it.
        if j - i == 1 && j < n && c[j].is_ascii_digit() && (i == 0 || !is_word_char(c[i - 1])) {
            return word_from(c, i, i + 1, next);
        }
        return (if j - i >= 2 { "--".into() } else { "-".into() }, j);
    }
    if ch == '+' && i + 1 < n && c[i + 1].is_ascii_digit() && i == 0 {
        return word_from(c, i, i + 1, next);
    }
    if ch == '!' || ch == '?' {
        let j = run_end(c, i, |x| x == '!' || x == '?');
        return (rest(j), j);
    }
    if ch == '"' {
        return (if i == 0 { "``".into() } else { "''".into() }, i + 1);
    }
    if ch == '`' {
        let j = run_end(c, i, |x| x == '`');
        return (rest(j), j);
    }
    if ch == '\'' {
        // Clitic-like words that start with an apostrophe: 'tis, 'til, 'n', 'em, 's.
        let word_end = run_end(c, i + 1, is_word_char);
        if word_end > i + 1 {
            let w: String = c[i + 1..word_end].iter().collect::<String>().to_lowercase();
            if word_end < n && c[word_end] == '\'' && w == "n" {
                return (rest(word_end + 1), word_end + 1);
            }
            if matches!(
                w.as_str(),
                "tis" | "twas" | "til" | "em" | "cause" | "round"
            ) {
                return (rest(word_end), word_end);
            }
            if CLITICS.contains(&format!("'{w}").as_str()) {
                return (rest(word_end), word_end);
            }
            // Decades: '90s.
            let digits = w.trim_end_matches('s');
            if !digits.is_empty() && digits.len() == 2 && digits.chars().all(|x| x.is_ascii_digit())
            {
                return (rest(word_end), word_end);
            }
        }
        if i + 1 < n && c[i + 1] == '\'' {
            return ("''".into(), i + 2);
        }
        return ("'".into(), i + 1);
    }
    let bracket = match ch {
        '(' => Some("-lrb-"),
        ')' => Some("-rrb-"),
        '[' => Some("-lsb-"),
        ']' => Some("-rsb-"),
        '{' => Some("-lcb-"),
        '}' => Some("-rcb-"),
        _ => None,
    };
    if let Some(b) = bracket {
        return (b.into(), i + 1);
    }
    if is_word_char(ch) {
        return word_from(c, i, i, next);
    }
    // Any other symbol is a token of its own ($, #, %, *, &, @, ;, :, ,, /).
    (ch.to_string(), i + 1)
}

fn run_end(c: &[char], i: usize, f: impl Fn(char) -> bool) -> usize {
    let mut j = i;
    while j < c.len() && f(c[j]) {
        j += 1;
    }
    j
}

/// A word starting at `start` (its body from `body`): letters and digits joined by internal
/// hyphens, slashes, periods, apostrophes, and (between digits) commas and colons; then an
/// abbreviation or acronym period if it has one.
fn word_from(c: &[char], start: usize, body: usize, next: Option<char>) -> (String, usize) {
    let n = c.len();
    let mut j = run_end(c, body, is_word_char);
    loop {
        if j + 1 < n && is_word_char(c[j + 1]) {
            let sep = c[j];
            let digits = c[j - 1].is_ascii_digit() && c[j + 1].is_ascii_digit();
            let joins = match sep {
                '-' | '/' | '.' | '&' => true,
                // rock'n'roll splits around 'n'; 5'6 splits at the apostrophe.
                '\'' => {
                    !digits
                        && !(j + 2 < n && (c[j + 1] == 'n' || c[j + 1] == 'N') && c[j + 2] == '\'')
                }
                ',' | ':' => digits,
                _ => false,
            };
            if joins {
                j = run_end(c, j + 1, is_word_char);
                continue;
            }
        }
        break;
    }
    let word: String = c[start..j].iter().collect();
    // Acronyms (u.s.a.) and known abbreviations keep their period.
    if j < n && c[j] == '.' && (j + 1 == n || c[j + 1] != '.') {
        let lower = word.to_lowercase();
        let acronym = word.contains('.')
            && word
                .split('.')
                .all(|p| p.chars().count() == 1 && p.chars().all(char::is_alphabetic));
        let initial = word.chars().count() == 1 && word.chars().all(char::is_alphabetic);
        let before_number = j + 1 == n
            && next.is_some_and(|x| x.is_ascii_digit())
            && NUMBER_ABBREVIATIONS.contains(&lower.as_str());
        if acronym || initial || before_number || ABBREVIATIONS.contains(&lower.as_str()) {
            return (format!("{word}."), j + 1);
        }
    }
    (word, j)
}

/// Lower-cases a lexed token and splits contractions off words.
fn push_word(tok: &str, out: &mut Vec<String>) {
    let lower = tok.to_lowercase();
    for (w, at) in SPLIT_WORDS {
        if lower == w {
            out.push(lower[..at].to_string());
            out.push(lower[at..].to_string());
            return;
        }
    }
    if !lower.chars().next().is_some_and(is_word_char) {
        out.push(lower);
        return;
    }
    let mut tail: Vec<String> = Vec::new();
    let mut word = lower;
    // Peel clitics from the end (shouldn't've -> should n't 've).
    'peel: loop {
        for cl in CLITICS {
            if word.len() > cl.len() && word.ends_with(cl) {
                let stem = &word[..word.len() - cl.len()];
                if cl == "n't" || stem.chars().last().is_some_and(is_word_char) {
                    tail.push(cl.to_string());
                    word = stem.to_string();
                    continue 'peel;
                }
            }
        }
        break;
    }
    // y'all -> y' all, y'know -> y' know; o'clock and names keep their apostrophe.
    if let Some(rest) = word.strip_prefix("y'") {
        if !rest.is_empty() {
            out.push("y'".into());
            out.push(rest.into());
            out.extend(tail.into_iter().rev());
            return;
        }
    }
    // A plural possessive: dogs' -> dogs '
    if let Some(stem) = word.strip_suffix('\'') {
        out.push(stem.into());
        out.push("'".into());
    } else {
        out.push(word);
    }
    out.extend(tail.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::tokenize;

    #[test]
    fn common_cases() {
        assert_eq!(
            tokenize("A dog barks, while birds chirp."),
            "a dog barks while birds chirp"
        );
        assert_eq!(
            tokenize("Birds don't stop; they can't."),
            "birds do n't stop they ca n't"
        );
        assert_eq!(
            tokenize("A car's (old) engine"),
            "a car 's -lrb- old -rrb- engine"
        );
        assert_eq!(tokenize("Dogs' paws"), "dogs paws");
        assert_eq!(tokenize(""), "");
    }
}
