//! Compound queries: the text a person types in the search box or gives `clipseek search`
//! (`dog -leash`, `beach + sunset`, `2:golden retriever`, `@holiday/IMG_0042.jpg`) parsed
//! into weighted terms, and the rule that turns the terms' embeddings into one query vector.
//!
//! It must not encode text, read files or know where a photo's embedding lives: the caller
//! embeds each [`TermSource::Text`] and resolves each [`TermSource::Photo`] (the page from a
//! result's Similar button or a dropped photo, the CLI from an indexed path), then hands the
//! vectors to [`combine`]. No input string may make it panic; every failure is a
//! [`QueryError`] that reads as one sentence.
//!
//! Syntax. Words join into one term until an operator starts the next: a `+` (alone or at
//! the start of a word) adds the next term, a `-` at the start of a word (or alone) subtracts
//! it, `N:` at the start of a word weighs it (`N` a decimal number, `0 < N <= 100`, default
//! 1; a sign comes first: `-2:leash`), and `@REF` is a photo (a path as indexed, `#ID` for an
//! entry id, `@"a path with spaces.jpg"`). Text in double quotes is taken literally, so
//! `"-ish"` or `"10:30"` search those words. A `-` or `+` inside a word (`t-shirt`) is
//! part of the word. A query with only subtracted terms is refused ([`QueryError::OnlyNegative`]):
//! "not a leash" alone has no direction to look in (everything not a leash is the whole
//! collection, ranked by how unlike a leash it is, which is noise).
//!
//! The maths (README, "Compound queries"): with `ê` the L2-normalised embedding of a term,
//! `w` its weight and `λ =` [`NEGATIVE_WEIGHT`] `= 0.5`,
//! `q = normalise(Σ_{+ terms} w·ê − λ·Σ_{− terms} w·ê)`; the score of a photo is `q·x` (the
//! cosine, as for a plain query). λ = ½ is the usual CLIP "prompt minus negative prompt"
//! recipe: CLIP texts sit close together (cos 0.7–0.9 between unrelated captions), so
//! `ê₊ − ê₋` at full strength would be mostly the difference direction and lose what was
//! asked for. With one positive and one negative this equals [`super::rank::query_vector`].

use super::rank::{l2_normalize, NEGATIVE_WEIGHT};
use super::{EmbeddingIndex, IndexError, Match, Query};

/// The largest weight a term may carry (larger ones are almost surely typos).
pub const MAX_WEIGHT: f32 = 100.0;

/// Where a term's embedding comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TermSource {
    /// Text to encode with the text tower (words joined by single spaces).
    Text(String),
    /// A photo already in the index: its path as indexed, or `#ID`.
    Photo(String),
}

/// One term of a compound query.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub source: TermSource,
    /// In `(0, MAX_WEIGHT]`.
    pub weight: f32,
    /// Subtracted (a `-` term) rather than added.
    pub negative: bool,
    /// Byte offset in the query text where the term (or its operator) starts.
    pub position: usize,
}

/// A parsed query: its terms in the order typed, at least one of them positive.
#[derive(Debug, Clone, PartialEq)]
pub struct CompoundQuery {
    pub terms: Vec<Term>,
}

/// Everything that can go wrong with a compound query. Each message is one sentence.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("the query is empty")]
    Empty,
    #[error(
        "the query only says what to leave out; add something to look for (e.g. `beach -people`)"
    )]
    OnlyNegative,
    #[error("`{operator}` at character {position} is not followed by anything to search for")]
    DanglingOperator { operator: String, position: usize },
    #[error("`{first}` and `{second}` at character {position} cannot follow each other")]
    ConflictingOperators {
        first: String,
        second: String,
        position: usize,
    },
    #[error(
        "the weight `{text}` at character {position} must be a number above 0 and at most 100"
    )]
    BadWeight { text: String, position: usize },
    #[error("the quote opened at character {position} is never closed")]
    UnclosedQuote { position: usize },
    #[error("the `@` at character {position} names no photo")]
    EmptyPhoto { position: usize },
    #[error("the term at character {position} is empty")]
    EmptyTerm { position: usize },
    #[error("no indexed photo is `{reference}` (give its path as indexed, or #ID)")]
    UnknownPhoto { reference: String },
    #[error("the query has {terms} terms but {vectors} embeddings were given for them")]
    VectorCount { terms: usize, vectors: usize },
    #[error("no embedding was given for the text `{text}`")]
    MissingText { text: String },
    #[error("the terms of the query cancel each other out, so it points nowhere")]
    Cancels,
    #[error(transparent)]
    Index(#[from] IndexError),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Plus,
    Minus,
    Weight(f32),
    Photo(String),
    Word(String),
}

/// Splits `input` into tokens with their byte offsets. Iterative (no recursion), so a
/// hostile string (`1:1:1:…`) cannot exhaust the stack.
fn lex(input: &str) -> Result<Vec<(usize, Token)>, QueryError> {
    let mut tokens = Vec::new();
    let mut pos = 0;
    while let Some(c) = input.get(pos..).and_then(|s| s.chars().next()) {
        let start = pos;
        if c.is_whitespace() {
            pos += c.len_utf8();
            continue;
        }
        match c {
            '+' => {
                tokens.push((start, Token::Plus));
                pos += 1;
            }
            '-' => {
                tokens.push((start, Token::Minus));
                pos += 1;
            }
            '"' => {
                let (text, end) = quoted(input, start)?;
                tokens.push((start, Token::Word(text.to_string())));
                pos = end;
            }
            '@' => {
                let after = start + 1;
                let (reference, end) = if input.get(after..).is_some_and(|s| s.starts_with('"')) {
                    quoted(input, after)?
                } else {
                    bare_word(input, after)
                };
                if reference.is_empty() {
                    return Err(QueryError::EmptyPhoto { position: start });
                }
                tokens.push((start, Token::Photo(reference.to_string())));
                pos = end;
            }
            _ => {
                let (word, end) = bare_word(input, start);
                match weight_prefix(word) {
                    Some(number) => {
                        let weight = number
                            .parse::<f32>()
                            .ok()
                            .filter(|w| w.is_finite() && *w > 0.0 && *w <= MAX_WEIGHT)
                            .ok_or_else(|| QueryError::BadWeight {
                                text: number.to_string(),
                                position: start,
                            })?;
                        tokens.push((start, Token::Weight(weight)));
                        // What follows the colon starts a token of its own.
                        pos = start + number.len() + 1;
                    }
                    None => {
                        tokens.push((start, Token::Word(word.to_string())));
                        pos = end;
                    }
                }
            }
        }
    }
    Ok(tokens)
}

/// `"2:golden"` -> `"2"`; `None` unless the word starts with digits (and dots) and a colon.
fn weight_prefix(word: &str) -> Option<&str> {
    let (number, _) = word.split_once(':')?;
    let numeric = number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.chars().any(|c| c.is_ascii_digit());
    numeric.then_some(number)
}

/// The text from `start` up to the next whitespace, and where it ends.
fn bare_word(input: &str, start: usize) -> (&str, usize) {
    let rest = input.get(start..).unwrap_or_default();
    let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
    (rest.get(..len).unwrap_or_default(), start + len)
}

/// The text between the quote at `open` and the next quote, and the offset after it.
fn quoted(input: &str, open: usize) -> Result<(&str, usize), QueryError> {
    let body = open + 1;
    let rest = input.get(body..).unwrap_or_default();
    let close = rest
        .find('"')
        .ok_or(QueryError::UnclosedQuote { position: open })?;
    Ok((rest.get(..close).unwrap_or_default(), body + close + 1))
}

/// Parses a compound query (see the module docs for the syntax).
pub fn parse(input: &str) -> Result<CompoundQuery, QueryError> {
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Err(QueryError::Empty);
    }
    #[derive(Default)]
    struct Pending {
        negative: Option<usize>,
        plus: Option<usize>,
        weight: Option<(usize, f32)>,
    }
    impl Pending {
        fn start(&self, fallback: usize) -> usize {
            [self.negative, self.plus, self.weight.map(|w| w.0)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(fallback)
        }
    }
    let mut terms: Vec<Term> = Vec::new();
    // The text term being built: its words, and whether it can still take more words.
    let mut words: Vec<String> = Vec::new();
    let mut open = false;
    let mut pending = Pending::default();
    let conflict = |first: &str, second: &str, position: usize| QueryError::ConflictingOperators {
        first: first.to_string(),
        second: second.to_string(),
        position,
    };

    fn close(terms: &mut [Term], words: &mut Vec<String>, open: &mut bool) {
        if *open {
            if let Some(last) = terms.last_mut() {
                last.source = TermSource::Text(words.join(" "));
            }
            words.clear();
            *open = false;
        }
    }

    for (position, token) in tokens {
        match token {
            Token::Plus => {
                close(&mut terms, &mut words, &mut open);
                if pending.negative.is_some() {
                    return Err(conflict("-", "+", position));
                }
                if pending.weight.is_some() {
                    return Err(conflict("weight", "+", position));
                }
                pending.plus.get_or_insert(position);
            }
            Token::Minus => {
                close(&mut terms, &mut words, &mut open);
                if pending.negative.is_some() {
                    return Err(conflict("-", "-", position));
                }
                if pending.weight.is_some() {
                    return Err(conflict("weight", "-", position));
                }
                pending.negative = Some(position);
            }
            Token::Weight(w) => {
                close(&mut terms, &mut words, &mut open);
                if pending.weight.is_some() {
                    return Err(conflict("weight", "weight", position));
                }
                pending.weight = Some((position, w));
            }
            Token::Photo(reference) => {
                close(&mut terms, &mut words, &mut open);
                terms.push(Term {
                    source: TermSource::Photo(reference),
                    weight: pending.weight.map_or(1.0, |w| w.1),
                    negative: pending.negative.is_some(),
                    position: pending.start(position),
                });
                pending = Pending::default();
            }
            Token::Word(word) => {
                let continues = open
                    && pending.negative.is_none()
                    && pending.plus.is_none()
                    && pending.weight.is_none();
                if !continues {
                    close(&mut terms, &mut words, &mut open);
                    terms.push(Term {
                        source: TermSource::Text(String::new()),
                        weight: pending.weight.map_or(1.0, |w| w.1),
                        negative: pending.negative.is_some(),
                        position: pending.start(position),
                    });
                    pending = Pending::default();
                    open = true;
                }
                if !word.trim().is_empty() {
                    words.push(word.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
        }
    }
    close(&mut terms, &mut words, &mut open);
    if let Some(position) = pending
        .negative
        .or(pending.plus)
        .or(pending.weight.map(|w| w.0))
    {
        let operator = if pending.negative == Some(position) {
            "-".to_string()
        } else if pending.plus == Some(position) {
            "+".to_string()
        } else {
            input
                .get(position..)
                .and_then(|s| s.split(':').next())
                .map_or_else(String::new, |n| format!("{n}:"))
        };
        return Err(QueryError::DanglingOperator { operator, position });
    }
    if let Some(empty) = terms
        .iter()
        .find(|t| matches!(&t.source, TermSource::Text(s) if s.is_empty()))
    {
        return Err(QueryError::EmptyTerm {
            position: empty.position,
        });
    }
    if terms.is_empty() {
        return Err(QueryError::Empty);
    }
    if terms.iter().all(|t| t.negative) {
        return Err(QueryError::OnlyNegative);
    }
    Ok(CompoundQuery { terms })
}

impl CompoundQuery {
    /// The distinct texts to encode, in first-seen order.
    pub fn texts(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for term in &self.terms {
            if let TermSource::Text(t) = &term.source {
                if !out.contains(&t.as_str()) {
                    out.push(t);
                }
            }
        }
        out
    }
}

/// The unit-length query vector for `query`, given one embedding per term (in term order;
/// any length scale, they are normalised here): `normalise(Σ₊ w·ê − λ·Σ₋ w·ê)`.
pub fn combine(
    query: &CompoundQuery,
    embeddings: &[&[f32]],
    dim: usize,
) -> Result<Vec<f32>, QueryError> {
    if embeddings.len() != query.terms.len() {
        return Err(QueryError::VectorCount {
            terms: query.terms.len(),
            vectors: embeddings.len(),
        });
    }
    let mut sum = vec![0.0f64; dim];
    let mut unit = Vec::with_capacity(dim);
    for (term, embedding) in query.terms.iter().zip(embeddings) {
        if embedding.len() != dim {
            return Err(IndexError::DimMismatch {
                expected_dim: dim,
                got_dim: embedding.len(),
            }
            .into());
        }
        unit.clear();
        unit.extend_from_slice(embedding);
        l2_normalize(&mut unit)?;
        let scale = if term.negative {
            -f64::from(NEGATIVE_WEIGHT) * f64::from(term.weight)
        } else {
            f64::from(term.weight)
        };
        for (s, &u) in sum.iter_mut().zip(&unit) {
            *s += scale * f64::from(u);
        }
    }
    let norm = sum.iter().map(|s| s * s).sum::<f64>().sqrt();
    // Below this the direction is rounding noise of terms that cancel (weights are <= 100).
    if !norm.is_finite() || norm < 1e-6 {
        return Err(QueryError::Cancels);
    }
    Ok(sum.iter().map(|s| (s / norm) as f32).collect())
}

/// The entry a photo reference names: an indexed path, else `#ID` for an entry id.
pub fn resolve_photo(index: &EmbeddingIndex, reference: &str) -> Option<u64> {
    if let Some(entry) = index.entry_by_path(reference) {
        return Some(entry.id);
    }
    let id = reference.strip_prefix('#')?.parse::<u64>().ok()?;
    index.entry(id).map(|e| e.id)
}

/// Ranks `index` against `query`, `text_embedding` giving each distinct text's embedding
/// (as [`CompoundQuery::texts`] lists them; any scale). Photo terms are looked up in the
/// index, and the photos added as positive terms are left out of the results (as Similar
/// leaves the photo itself out). Returns the best `k`, best first.
pub fn search(
    index: &EmbeddingIndex,
    query: &CompoundQuery,
    text_embedding: impl Fn(&str) -> Option<Vec<f32>>,
    k: usize,
) -> Result<Vec<Match>, QueryError> {
    search_with(index, query, text_embedding, |_| None, k)
}

/// [`search`], with photo terms that name no indexed photo asked of `other_photo` (the
/// page's photos dropped on the search box, which are not in the index): it answers the
/// embedding of the photo that `reference` names, or `None` (an
/// [`QueryError::UnknownPhoto`]). An indexed path or `#ID` always wins.
pub fn search_with(
    index: &EmbeddingIndex,
    query: &CompoundQuery,
    text_embedding: impl Fn(&str) -> Option<Vec<f32>>,
    other_photo: impl Fn(&str) -> Option<Vec<f32>>,
    k: usize,
) -> Result<Vec<Match>, QueryError> {
    let mut owned: Vec<Vec<f32>> = Vec::with_capacity(query.terms.len());
    let mut exclude = Vec::new();
    for term in &query.terms {
        match &term.source {
            TermSource::Text(text) => {
                owned.push(
                    text_embedding(text)
                        .ok_or_else(|| QueryError::MissingText { text: text.clone() })?,
                );
            }
            TermSource::Photo(reference) => {
                match resolve_photo(index, reference) {
                    Some(id) => {
                        let row = index.embedding(id).ok_or(IndexError::UnknownId { id })?;
                        owned.push(row.to_vec());
                        if !term.negative {
                            exclude.push(id);
                        }
                    }
                    None => owned.push(other_photo(reference).ok_or_else(|| {
                        QueryError::UnknownPhoto {
                            reference: reference.clone(),
                        }
                    })?),
                }
            }
        }
    }
    let refs: Vec<&[f32]> = owned.iter().map(Vec::as_slice).collect();
    let q = combine(query, &refs, index.dim())?;
    let single = Query {
        positive: vec![q],
        negative: Vec::new(),
        exclude,
    };
    Ok(index.search_query(&single, k)?)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{meta, one_hot};
    use super::*;

    type TestResult = Result<(), QueryError>;

    fn text(t: &str, weight: f32, negative: bool, position: usize) -> Term {
        Term {
            source: TermSource::Text(t.to_string()),
            weight,
            negative,
            position,
        }
    }

    #[test]
    fn plain_words_are_one_term() -> TestResult {
        let q = parse("  a dog   on the beach ")?;
        assert_eq!(q.terms, [text("a dog on the beach", 1.0, false, 2)]);
        Ok(())
    }

    #[test]
    fn minus_plus_and_weights_split_terms() -> TestResult {
        assert_eq!(
            parse("dog -leash")?.terms,
            [text("dog", 1.0, false, 0), text("leash", 1.0, true, 4)]
        );
        assert_eq!(
            parse("beach + sunset")?.terms,
            [text("beach", 1.0, false, 0), text("sunset", 1.0, false, 6)]
        );
        assert_eq!(
            parse("2:golden retriever")?.terms,
            [text("golden retriever", 2.0, false, 0)]
        );
        assert_eq!(
            parse("dog on grass - leash +0.5:ball -2:cat")?.terms,
            [
                text("dog on grass", 1.0, false, 0),
                text("leash", 1.0, true, 13),
                text("ball", 0.5, false, 21),
                text("cat", 2.0, true, 31),
            ]
        );
        // A weight may stand apart from its words, and `+ -` is a subtraction.
        assert_eq!(
            parse("3: red car + -rust")?.terms,
            [text("red car", 3.0, false, 0), text("rust", 1.0, true, 11)]
        );
        Ok(())
    }

    #[test]
    fn hyphens_inside_words_and_quotes_are_literal() -> TestResult {
        assert_eq!(
            parse("t-shirt x+y")?.terms,
            [text("t-shirt x+y", 1.0, false, 0)]
        );
        assert_eq!(
            parse("clock \"10:30\" -\"-ish  style\"")?.terms,
            [
                text("clock 10:30", 1.0, false, 0),
                text("-ish style", 1.0, true, 14)
            ]
        );
        // `10:30` unquoted is weight 10 on "30", as documented.
        assert_eq!(parse("10:30")?.terms, [text("30", 10.0, false, 0)]);
        Ok(())
    }

    #[test]
    fn photos_are_terms_of_their_own() -> TestResult {
        let q = parse("@trip/a.jpg sunset -@\"my dir/b c.jpg\" 2:@#7")?;
        let photo = |r: &str, weight, negative, position| Term {
            source: TermSource::Photo(r.to_string()),
            weight,
            negative,
            position,
        };
        assert_eq!(
            q.terms,
            [
                photo("trip/a.jpg", 1.0, false, 0),
                text("sunset", 1.0, false, 12),
                photo("my dir/b c.jpg", 1.0, true, 19),
                photo("#7", 2.0, false, 38),
            ]
        );
        assert_eq!(q.texts(), ["sunset"]);
        Ok(())
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        assert_eq!(parse(""), Err(QueryError::Empty));
        assert_eq!(parse(" \t "), Err(QueryError::Empty));
        assert_eq!(parse("-leash"), Err(QueryError::OnlyNegative));
        assert_eq!(parse("-leash -@a.jpg"), Err(QueryError::OnlyNegative));
        assert!(matches!(
            parse("dog -"),
            Err(QueryError::DanglingOperator { ref operator, position: 4 }) if operator == "-"
        ));
        assert!(matches!(
            parse("dog +"),
            Err(QueryError::DanglingOperator { ref operator, position: 4 }) if operator == "+"
        ));
        assert!(matches!(
            parse("dog 2:"),
            Err(QueryError::DanglingOperator { ref operator, position: 4 }) if operator == "2:"
        ));
        assert!(matches!(
            parse("dog --leash"),
            Err(QueryError::ConflictingOperators { position: 5, .. })
        ));
        assert!(matches!(
            parse("dog - + leash"),
            Err(QueryError::ConflictingOperators { position: 6, .. })
        ));
        assert!(matches!(
            parse("2:-dog"),
            Err(QueryError::ConflictingOperators { .. })
        ));
        for bad in ["0:dog", "101:dog", "1.2.3:dog", "00.0:dog"] {
            assert!(
                matches!(parse(bad), Err(QueryError::BadWeight { position: 0, .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse("dog \"on a lead"),
            Err(QueryError::UnclosedQuote { position: 4 })
        );
        assert_eq!(parse("dog @"), Err(QueryError::EmptyPhoto { position: 4 }));
        assert_eq!(
            parse("dog @\"\""),
            Err(QueryError::EmptyPhoto { position: 4 })
        );
        assert_eq!(
            parse("dog -\"\""),
            Err(QueryError::EmptyTerm { position: 4 })
        );
        assert!(QueryError::OnlyNegative.to_string().contains("leave out"));
    }

    #[test]
    fn hostile_strings_never_panic() {
        let pieces = [
            "-", "+", "\"", "@", ":", "2:", "é", "🐕", " ", "\t", "1e9:", "-@", "@\"", "x",
        ];
        let mut state = 12345u64;
        for _ in 0..5000 {
            let mut s = String::new();
            for _ in 0..(state % 9) {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                s.push_str(pieces[(state >> 33) as usize % pieces.len()]);
            }
            if let Ok(q) = parse(&s) {
                assert!(!q.terms.is_empty(), "{s:?}");
                assert!(q.terms.iter().any(|t| !t.negative), "{s:?}");
                assert!(q
                    .terms
                    .iter()
                    .all(|t| t.weight > 0.0 && t.weight <= MAX_WEIGHT));
            }
        }
    }

    #[test]
    fn long_hostile_strings_are_linear() {
        let colons = "1:".repeat(100_000);
        assert!(matches!(
            parse(&colons),
            Err(QueryError::ConflictingOperators { .. })
        ));
        let words = "a ".repeat(100_000);
        assert!(matches!(parse(&words), Ok(q) if q.terms.len() == 1));
    }

    fn close_to(got: &[f32], want: &[f32]) -> bool {
        got.len() == want.len() && got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6)
    }

    #[test]
    fn combine_matches_hand_computed_vectors() -> TestResult {
        // dog -leash, dog = (3, 0, 0) -> e0, leash = (0, 2, 0) -> e1:
        // e0 - 0.5 e1 = (1, -0.5, 0), norm sqrt(1.25).
        let q = parse("dog -leash")?;
        let v = combine(&q, &[&[3.0, 0.0, 0.0], &[0.0, 2.0, 0.0]], 3)?;
        let n = 1.25f32.sqrt();
        assert!(close_to(&v, &[1.0 / n, -0.5 / n, 0.0]), "{v:?}");

        // 2:golden retriever + beach -0.5:people, with golden = (1, 1, 0, 0) -> (a, a, 0, 0),
        // a = 1/sqrt 2, beach = e2, people = (0, 0, 0, 5) -> e3:
        // 2 (a, a, 0, 0) + (0, 0, 1, 0) - 0.5 * 0.5 (0, 0, 0, 1) = (2a, 2a, 1, -0.25),
        // squared norm 2 + 2 + 1 + 0.0625 = 5.0625, norm 2.25.
        let q = parse("2:golden retriever + beach -0.5:people")?;
        let v = combine(
            &q,
            &[
                &[1.0, 1.0, 0.0, 0.0],
                &[0.0, 0.0, 4.0, 0.0],
                &[0.0, 0.0, 0.0, 5.0],
            ],
            4,
        )?;
        let a = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            close_to(
                &v,
                &[2.0 * a / 2.25, 2.0 * a / 2.25, 1.0 / 2.25, -0.25 / 2.25]
            ),
            "{v:?}"
        );

        // beach + sunset is the normalised sum (= the mean's direction).
        let q = parse("beach + sunset")?;
        let v = combine(&q, &[&[0.0, 1.0], &[1.0, 0.0]], 2)?;
        assert!(close_to(&v, &[a, a]), "{v:?}");
        Ok(())
    }

    #[test]
    fn one_positive_one_negative_equals_rank_query_vector() -> TestResult {
        let p = vec![0.3, -1.2, 0.8, 0.1];
        let n = vec![1.0, 0.5, -0.2, 0.9];
        let ours = combine(&parse("a -b")?, &[&p, &n], 4)?;
        let theirs = super::super::rank::query_vector(
            &super::super::Query {
                positive: vec![p],
                negative: vec![n],
                exclude: Vec::new(),
            },
            4,
        )?;
        assert!(close_to(&ours, &theirs), "{ours:?} vs {theirs:?}");
        Ok(())
    }

    #[test]
    fn combine_errors() -> TestResult {
        let q = parse("a -2:b")?;
        assert_eq!(
            combine(&q, &[&[1.0, 0.0], &[1.0, 0.0]], 2),
            Err(QueryError::Cancels)
        );
        assert_eq!(
            combine(&q, &[&[1.0, 0.0]], 2),
            Err(QueryError::VectorCount {
                terms: 2,
                vectors: 1
            })
        );
        assert_eq!(
            combine(&q, &[&[1.0, 0.0], &[1.0]], 2),
            Err(QueryError::Index(IndexError::DimMismatch {
                expected_dim: 2,
                got_dim: 1
            }))
        );
        assert_eq!(
            combine(&q, &[&[0.0, 0.0], &[1.0, 0.0]], 2),
            Err(QueryError::Index(IndexError::ZeroVector))
        );
        assert_eq!(
            combine(&q, &[&[f32::NAN, 0.0], &[1.0, 0.0]], 2),
            Err(QueryError::Index(IndexError::NonFinite { position: 0 }))
        );
        Ok(())
    }

    #[test]
    fn search_subtracts_and_resolves_photos() -> Result<(), Box<dyn std::error::Error>> {
        let mut index = EmbeddingIndex::new("m", 4);
        let dog_beach = index.upsert(meta("dog_beach.jpg"), &[1.0, 1.0, 0.0, 0.0])?;
        let dog_park = index.upsert(meta("dog_park.jpg"), &[1.0, 0.0, 1.2, 0.0])?;
        let beach = index.upsert(meta("beach.jpg"), &[0.0, 1.0, 0.0, 0.0])?;
        let texts = |t: &str| match t {
            "dog" => Some(one_hot(4, 0)),
            "beach" => Some(one_hot(4, 1)),
            _ => None,
        };
        let ids = |found: &[Match]| found.iter().map(|m| m.id).collect::<Vec<_>>();
        let plain = search(&index, &parse("dog")?, texts, 3)?;
        assert_eq!(ids(&plain), [dog_beach, dog_park, beach]);
        let without = search(&index, &parse("dog -beach")?, texts, 3)?;
        assert_eq!(ids(&without), [dog_park, dog_beach, beach]);
        // q = (1, -0.5, 0, 0)/sqrt(1.25); dog_park = (1, 0, 1.2, 0)/sqrt(2.44).
        let want = 1.0 / (1.25f32.sqrt() * 2.44f32.sqrt());
        assert!((without[0].score - want).abs() < 1e-6);

        // A photo term: its own photo is left out, a negative photo is not.
        let like = search(&index, &parse("@dog_beach.jpg")?, texts, 3)?;
        assert_eq!(ids(&like), [beach, dog_park]);
        let by_id = search(&index, &parse(&format!("@#{dog_beach}"))?, texts, 3)?;
        assert_eq!(by_id, like);
        let away = search(&index, &parse("dog -@beach.jpg")?, texts, 3)?;
        assert_eq!(ids(&away), ids(&without));
        assert_eq!(
            search(&index, &parse("@nope.jpg")?, texts, 3),
            Err(QueryError::UnknownPhoto {
                reference: "nope.jpg".into()
            })
        );
        assert_eq!(
            search(&index, &parse("cat")?, texts, 3),
            Err(QueryError::MissingText { text: "cat".into() })
        );
        Ok(())
    }

    #[test]
    fn photos_outside_the_index_come_from_the_caller() -> Result<(), Box<dyn std::error::Error>> {
        let mut index = EmbeddingIndex::new("m", 2);
        let a = index.upsert(meta("a.jpg"), &[1.0, 0.0])?;
        let b = index.upsert(meta("b.jpg"), &[0.0, 1.0])?;
        let none = |_: &str| None;
        let dropped = |r: &str| (r == "drop.png").then(|| vec![0.0, 2.0]);
        let found = search_with(&index, &parse("@drop.png")?, none, dropped, 2)?;
        // Not an indexed photo, so nothing is left out: b first, at cosine 1.
        assert_eq!(found.iter().map(|m| m.id).collect::<Vec<_>>(), [b, a]);
        assert!((found[0].score - 1.0).abs() < 1e-6);
        // An indexed path wins over the caller's photo of that name.
        let shadow = |_: &str| Some(vec![0.0, 1.0]);
        let own = search_with(&index, &parse("@a.jpg")?, none, shadow, 2)?;
        assert_eq!(own.iter().map(|m| m.id).collect::<Vec<_>>(), [b]);
        assert_eq!(
            search_with(&index, &parse("@x.png")?, none, dropped, 2),
            Err(QueryError::UnknownPhoto {
                reference: "x.png".into()
            })
        );
        Ok(())
    }
}
