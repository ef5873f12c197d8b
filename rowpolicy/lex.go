package rowpolicy

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The lexer below follows the lexer rules of Milvus 2.6.18's
// internal/parser/planparserv2/Plan.g4 (commit f15a99625b, "[automated]
// Bump milvus version to v2.6.18"). ANTLR picks the longest match at each
// position and, between rules of equal length, the one defined first; so
// `and` is the keyword AND but `android` an Identifier, `is null` (one
// space) is one token ISNULL, `a["k"][0]` one JSONIdentifier and `[ ]` one
// EmptyArray. Whitespace is space, tab, CR and LF only. The grammar has no
// comments. Anything else is a token recognition error in Milvus, and an
// error here.

// Kind is a token's lexer rule.
type Kind int

const (
	Ident      Kind = iota // Identifier: [a-zA-Z_][a-zA-Z_0-9]*
	Meta                   // $meta, the dynamic field
	JSONIdent              // (Identifier|Meta)('[' (StringLiteral|DecimalConstant) ']')+
	String                 // StringLiteral, quotes (and encoding prefix) included
	Integer                // IntegerConstant: decimal, octal, hex, binary
	Float                  // FloatingConstant
	Bool                   // BooleanConstant
	Keyword                // and, or, not, in, like, exists, json_contains, ...
	Punct                  // operators and ( ) [ ] { } ,
	EmptyArray             // '[' whitespace* ']'
	IsNull                 // `is null`, `IS NULL`
	IsNotNull              // `is not null`, `IS NOT NULL`
	UserName               // $current_user_name (policy expressions only)
	UserTag                // $current_user_tags['key'] (policy expressions only)
)

// Token is one lexeme of a filter.
type Token struct {
	Kind Kind
	Text string // the source text of the token
	Pos  int    // byte offset in the filter
	// Op is the canonical spelling of a keyword or operator: "and" for
	// `and`, `AND` and `&&`; "or" for `or`, `OR`, `||`; "not" for `not`,
	// `NOT`, `!`; "in", "like" and the others lower-cased.
	Op string
	// Key is the tag key of a UserTag token.
	Key string
}

// keywords are Plan.g4's keyword rules, each spelled as the grammar lists
// it (lower or upper case, never mixed), with the canonical name.
var keywords = map[string]string{}

func init() {
	for _, k := range []string{
		"like", "exists", "text_match", "phrase_match", "random_sample",
		"interval", "iso", "minimum_should_match", "and", "or", "not", "in",
		"json_contains", "json_contains_all", "json_contains_any",
		"array_contains", "array_contains_all", "array_contains_any", "array_length",
		"st_equals", "st_touches", "st_overlaps", "st_crosses", "st_contains",
		"st_intersects", "st_within", "st_dwithin",
	} {
		keywords[k] = k
		keywords[strings.ToUpper(k)] = k
	}
}

var booleans = map[string]bool{"true": true, "True": true, "TRUE": true, "false": false, "False": false, "FALSE": false}

// operators, longest first where one is a prefix of another.
var operators = []struct{ text, op string }{
	{"**", "**"}, {"<=", "<="}, {"<<", "<<"}, {">=", ">="}, {">>", ">>"},
	{"==", "=="}, {"!=", "!="}, {"&&", "and"}, {"||", "or"},
	{"<", "<"}, {">", ">"}, {"=", "="}, {"!", "not"}, {"&", "&"}, {"|", "|"},
	{"+", "+"}, {"-", "-"}, {"*", "*"}, {"/", "/"}, {"%", "%"}, {"^", "^"}, {"~", "~"},
	{"(", "("}, {")", ")"}, {"[", "["}, {"]", "]"}, {"{", "{"}, {"}", "}"}, {",", ","},
}

const (
	userNameVar = "$current_user_name"
	userTagsVar = "$current_user_tags"
	userVarStem = "$current_user"
)

// lex splits src into tokens. withVariables admits $current_user_name and
// $current_user_tags['key'] (policy expressions); a caller's filter gets an
// error naming them instead.
func lex(src string, withVariables bool) ([]Token, error) {
	if !utf8.ValidString(src) {
		return nil, fmt.Errorf("filter is not valid UTF-8")
	}
	var out []Token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
			continue
		case isNondigit(c):
			t, err := lexWord(src, i)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
			i += len(t.Text)
			continue
		case isDigit(c) || (c == '.' && i+1 < len(src) && isDigit(src[i+1])):
			n, float := numberLen(src[i:])
			k := Integer
			if float {
				k = Float
			}
			out = append(out, Token{Kind: k, Text: src[i : i+n], Pos: i})
			i += n
			continue
		case c == '"' || c == '\'':
			n, err := stringLen(src[i:])
			if err != nil {
				return nil, fmt.Errorf("at offset %d: %w", i, err)
			}
			out = append(out, Token{Kind: String, Text: src[i : i+n], Pos: i})
			i += n
			continue
		case c == '$':
			t, err := lexDollar(src, i, withVariables)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
			i += len(t.Text)
			continue
		case c == '[':
			if n := emptyArrayLen(src[i:]); n > 0 {
				out = append(out, Token{Kind: EmptyArray, Text: src[i : i+n], Pos: i, Op: "[]"})
				i += n
				continue
			}
		}
		matched := false
		for _, o := range operators {
			if strings.HasPrefix(src[i:], o.text) {
				out = append(out, Token{Kind: Punct, Text: o.text, Pos: i, Op: o.op})
				i += len(o.text)
				matched = true
				break
			}
		}
		if !matched {
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, fmt.Errorf("at offset %d: %q is not a token of Milvus's filter grammar", i, r)
		}
	}
	return out, nil
}

// lexWord reads what starts with a letter or underscore: an identifier, a
// keyword, a boolean, a prefixed string (u8"..", u'..', U"..", L'..'), a
// JSON path, or `is [not] null`.
func lexWord(src string, i int) (Token, error) {
	j := i
	for j < len(src) && (isNondigit(src[j]) || isDigit(src[j])) {
		j++
	}
	word := src[i:j]
	if isEncodingPrefix(word) && j < len(src) && (src[j] == '"' || src[j] == '\'') {
		n, err := stringLen(src[j:])
		if err != nil {
			return Token{}, fmt.Errorf("at offset %d: %w", j, err)
		}
		return Token{Kind: String, Text: src[i : j+n], Pos: i}, nil
	}
	if n := jsonPathLen(src[j:]); n > 0 {
		return Token{Kind: JSONIdent, Text: src[i : j+n], Pos: i}, nil
	}
	if word == "is" || word == "IS" {
		notNull, null := " not null", " null"
		if word == "IS" {
			notNull, null = " NOT NULL", " NULL"
		}
		if strings.HasPrefix(src[j:], notNull) {
			return Token{Kind: IsNotNull, Text: src[i : j+len(notNull)], Pos: i, Op: "is not null"}, nil
		}
		if strings.HasPrefix(src[j:], null) {
			return Token{Kind: IsNull, Text: src[i : j+len(null)], Pos: i, Op: "is null"}, nil
		}
	}
	if op, ok := keywords[word]; ok {
		return Token{Kind: Keyword, Text: word, Pos: i, Op: op}, nil
	}
	if _, ok := booleans[word]; ok {
		return Token{Kind: Bool, Text: word, Pos: i}, nil
	}
	return Token{Kind: Ident, Text: word, Pos: i}, nil
}

// lexDollar reads $meta (and its JSON path) and, in policy expressions,
// the $current_user_* variables.
func lexDollar(src string, i int, withVariables bool) (Token, error) {
	rest := src[i:]
	if strings.HasPrefix(rest, userVarStem) {
		if !withVariables {
			return Token{}, fmt.Errorf("at offset %d: a filter must not name %s variables; policies fill them in", i, userVarStem+"_*")
		}
		if strings.HasPrefix(rest, userNameVar) && !continuesWord(rest, len(userNameVar)) {
			return Token{Kind: UserName, Text: userNameVar, Pos: i}, nil
		}
		if strings.HasPrefix(rest, userTagsVar+"[") {
			k := len(userTagsVar) + 1
			if k < len(rest) && (rest[k] == '"' || rest[k] == '\'') {
				n, err := stringLen(rest[k:])
				if err == nil && k+n < len(rest) && rest[k+n] == ']' {
					key, err := decodeString(rest[k : k+n])
					if err != nil {
						return Token{}, fmt.Errorf("at offset %d: tag key: %w", i+k, err)
					}
					return Token{Kind: UserTag, Text: rest[:k+n+1], Pos: i, Key: key}, nil
				}
			}
		}
		return Token{}, fmt.Errorf("at offset %d: only %s and %s['key'] are known", i, userNameVar, userTagsVar)
	}
	if strings.HasPrefix(rest, "$meta") {
		n := len("$meta")
		if m := jsonPathLen(rest[n:]); m > 0 {
			return Token{Kind: JSONIdent, Text: rest[:n+m], Pos: i}, nil
		}
		return Token{Kind: Meta, Text: "$meta", Pos: i}, nil
	}
	return Token{}, fmt.Errorf("at offset %d: '$' is not a token of Milvus's filter grammar", i)
}

func continuesWord(s string, at int) bool {
	return at < len(s) && (isNondigit(s[at]) || isDigit(s[at]))
}

// jsonPathLen is the length of the ('[' (StringLiteral | DecimalConstant)
// ']')+ that s starts with, 0 if none: a bracket that does not hold one
// of those is not part of the token (ANTLR falls back to the Identifier).
func jsonPathLen(s string) int {
	total := 0
	for {
		rest := s[total:]
		if len(rest) < 3 || rest[0] != '[' {
			return total
		}
		n := 0
		switch c := rest[1]; {
		case c == '0':
			n = 1
		case c >= '1' && c <= '9':
			n = 1
			for 1+n < len(rest) && isDigit(rest[1+n]) {
				n++
			}
		default:
			p := 0 // an encoding prefix before the quote
			switch {
			case strings.HasPrefix(rest[1:], "u8"):
				p = 2
			case isEncodingPrefix(rest[1:2]):
				p = 1
			}
			if 1+p < len(rest) && (rest[1+p] == '"' || rest[1+p] == '\'') {
				if m, err := stringLen(rest[1+p:]); err == nil {
					n = p + m
				}
			}
		}
		if n == 0 || 1+n >= len(rest) || rest[1+n] != ']' {
			return total
		}
		total += n + 2
	}
}

// emptyArrayLen is the length of '[' (Whitespace|Newline)* ']' at the start
// of s, 0 if s does not start with one.
func emptyArrayLen(s string) int {
	for j := 1; j < len(s); j++ {
		switch s[j] {
		case ' ', '\t', '\r', '\n':
		case ']':
			return j + 1
		default:
			return 0
		}
	}
	return 0
}

// stringLen is the length of the StringLiteral at the start of s (s[0] is
// its quote): characters other than the quote, backslash, CR and LF, or
// an EscapeSequence, or a backslash-newline continuation.
func stringLen(s string) (int, error) {
	q := s[0]
	for j := 1; j < len(s); {
		c := s[j]
		switch {
		case c == q:
			return j + 1, nil
		case c == '\r' || c == '\n':
			return 0, fmt.Errorf("string literal has a raw line break; write \\n")
		case c == '\\':
			n := escapeLen(s[j:])
			if n == 0 {
				return 0, fmt.Errorf("string literal has an invalid escape %q", s[j:min(j+2, len(s))])
			}
			j += n
		default:
			j++
		}
	}
	return 0, fmt.Errorf("string literal is not closed")
}

// escapeLen is the length of Plan.g4's EscapeSequence (or line
// continuation) at the start of s, 0 if there is none.
func escapeLen(s string) int {
	if len(s) < 2 {
		return 0
	}
	switch c := s[1]; {
	case strings.IndexByte(`'"?abfnrtv\`, c) >= 0:
		return 2
	case c >= '0' && c <= '7':
		n := 2
		for n < 4 && n < len(s) && s[n] >= '0' && s[n] <= '7' {
			n++
		}
		return n
	case c == 'x':
		n := 2
		for n < len(s) && isHex(s[n]) {
			n++
		}
		if n == 2 {
			return 0
		}
		return n
	case c == 'u' || c == 'U':
		want := 4
		if c == 'U' {
			want = 8
		}
		if len(s) < 2+want {
			return 0
		}
		for _, h := range []byte(s[2 : 2+want]) {
			if !isHex(h) {
				return 0
			}
		}
		return 2 + want
	case c == '\n':
		return 2
	case c == '\r' && len(s) > 2 && s[2] == '\n':
		return 3
	}
	return 0
}

// numberLen is the length of the longest IntegerConstant or
// FloatingConstant at the start of s, and whether it is a floating one.
func numberLen(s string) (int, bool) {
	digits := func(from int, ok func(byte) bool) int {
		j := from
		for j < len(s) && ok(s[j]) {
			j++
		}
		return j
	}
	exponent := func(from int, marks string) int { // [eE|pP] [+-]? Digit+ or 0 if none
		if from >= len(s) || strings.IndexByte(marks, s[from]) < 0 {
			return 0
		}
		j := from + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if e := digits(j, isDigit); e > j {
			return e - from
		}
		return 0
	}
	best, float := 0, false
	try := func(n int, isFloat bool) {
		if n > best {
			best, float = n, isFloat
		}
	}
	// Integers.
	if s[0] == '0' {
		try(digits(1, isOctal), false)
		if len(s) > 2 && (s[1] == 'x' || s[1] == 'X') {
			if h := digits(2, isHex); h > 2 {
				try(h, false)
			}
		}
		if len(s) > 2 && (s[1] == 'b' || s[1] == 'B') {
			if b := digits(2, func(c byte) bool { return c == '0' || c == '1' }); b > 2 {
				try(b, false)
			}
		}
	} else if isDigit(s[0]) {
		try(digits(0, isDigit), false)
	}
	// Decimal floats: Digit* '.' Digit+ Exp? | Digit+ '.' Exp? | Digit+ Exp.
	whole := digits(0, isDigit)
	if whole < len(s) && s[whole] == '.' {
		frac := digits(whole+1, isDigit)
		if frac > whole+1 || whole > 0 {
			try(frac+exponent(frac, "eE"), true)
		}
	} else if whole > 0 {
		if e := exponent(whole, "eE"); e > 0 {
			try(whole+e, true)
		}
	}
	// Hexadecimal floats: 0x (HexDigit* '.' HexDigit+ | HexDigit+ '.' | HexDigit+) BinaryExp.
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		h := digits(2, isHex)
		end := h
		if h < len(s) && s[h] == '.' {
			f := digits(h+1, isHex)
			if f > h+1 || h > 2 {
				end = f
			}
		}
		if end > 2 {
			if e := exponent(end, "pP"); e > 0 {
				try(end+e, true)
			}
		}
	}
	return best, float
}

func isNondigit(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool    { return c >= '0' && c <= '9' }
func isOctal(c byte) bool    { return c >= '0' && c <= '7' }
func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
func isEncodingPrefix(w string) bool { return w == "u8" || w == "u" || w == "U" || w == "L" }
