package knowledge

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tandem-chat/tandem/internal/errs"
)

// parseCSV reads an FAQ sheet: a header row naming the columns question,
// answer and optionally tags (any order, any case), then one FAQ pair per
// row. Spreadsheets that save with ";" or tabs between columns work too.
func parseCSV(s string) (*Parsed, error) {
	header, comma := csvHeader(s)
	cols := map[string]int{}
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(name, "\uFEFF")))
		if _, dup := cols[name]; !dup {
			cols[name] = i
		}
	}
	qCol, okQ := cols["question"]
	aCol, okA := cols["answer"]
	if !okQ || !okA {
		var found []string
		for _, h := range header {
			if h = strings.TrimSpace(h); h != "" {
				found = append(found, fmt.Sprintf("%q", truncateRunes(oneLine(h), 40)))
			}
			if len(found) == 10 {
				found = append(found, "…")
				break
			}
		}
		foundMsg := "no column names"
		if len(found) > 0 {
			foundMsg = "the columns " + strings.Join(found, ", ")
		}
		return nil, errs.Errorf(errs.Invalid, "the CSV file needs a header row with \"question\" and \"answer\" columns (and optionally \"tags\"); its first row has %s", foundMsg)
	}
	tagCol, okT := cols["tags"]
	if !okT {
		tagCol = -1
	}

	r := csv.NewReader(strings.NewReader(s))
	r.Comma = comma
	r.FieldsPerRecord = -1
	if _, err := r.Read(); err != nil { // the header, already read
		return nil, csvError(err)
	}
	var (
		chunks []Chunk
		bad    rowError
	)
	for row := 2; ; row++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		field := func(i int) string {
			if i < 0 || i >= len(rec) {
				return ""
			}
			return rec[i]
		}
		if strings.TrimSpace(strings.Join(rec, "")) == "" {
			continue // blank lines at the end of a sheet are common
		}
		q, a := oneLine(field(qCol)), cleanText(field(aCol))
		switch {
		case q == "" && a == "":
			bad.add("row %d has no question and no answer", row)
		case q == "":
			bad.add("row %d has an answer but no question", row)
		case a == "":
			bad.add("row %d (%q) has no answer", row, truncateRunes(q, 60))
		default:
			chunks = append(chunks, Chunk{Question: q, Text: a, Tags: splitTags(field(tagCol))})
		}
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, errs.Errorf(errs.Invalid, "the CSV file has a header row but no FAQ rows")
	}
	return &Parsed{Chunks: chunks}, nil
}

// csvHeader reads the first record with each likely delimiter and keeps the
// first that finds both required columns, falling back to a comma.
func csvHeader(s string) ([]string, rune) {
	var first []string
	for i, comma := range []rune{',', ';', '\t'} {
		r := csv.NewReader(strings.NewReader(s))
		r.Comma = comma
		r.FieldsPerRecord = -1
		rec, err := r.Read()
		if err != nil {
			continue
		}
		if i == 0 {
			first = rec
		}
		has := map[string]bool{}
		for _, h := range rec {
			has[strings.ToLower(strings.TrimSpace(h))] = true
		}
		if has["question"] && has["answer"] {
			return rec, comma
		}
	}
	return first, ','
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		hint := ""
		if errors.Is(pe.Err, csv.ErrBareQuote) || errors.Is(pe.Err, csv.ErrQuote) {
			hint = `; a field with quotes in it must itself be in double quotes, with each quote inside doubled ("")`
		}
		return errs.Errorf(errs.Invalid, "the CSV file could not be read at line %d: %v%s", pe.Line, pe.Err, hint)
	}
	return errs.Errorf(errs.Invalid, "the CSV file could not be read")
}

// splitTags splits a tags cell on ";", "|" or ",", dropping blanks and
// repeats.
func splitTags(s string) []string {
	var tags []string
	for _, t := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '|' || r == ',' || r == '；' || r == '，' }) {
		if t = oneLine(t); t != "" && !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return tags
}

// jsonShape is the expected shape, quoted in error messages.
const jsonShape = `an array of {"question": "…", "answer": "…", "tags": ["…"]} objects (or {"faqs": [ … ]})`

// parseJSON reads an FAQ sheet: an array of {question, answer, tags}
// objects, or an object holding that array under "faqs". Tags may be an
// array of strings or one string separated like a CSV cell.
func parseJSON(s string) (*Parsed, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, jsonError(s, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errs.Errorf(errs.Invalid, "the JSON file has more after its first value; it must be %s", jsonShape)
	}
	var items []any
	switch v := top.(type) {
	case []any:
		items = v
	case map[string]any:
		faqs, ok := lookup(v, "faqs")
		if arr, isArr := faqs.([]any); ok && isArr {
			items = arr
		} else {
			return nil, errs.Errorf(errs.Invalid, "the JSON file must be %s", jsonShape)
		}
	default:
		return nil, errs.Errorf(errs.Invalid, "the JSON file must be %s", jsonShape)
	}
	var (
		chunks []Chunk
		bad    rowError
	)
	for i, it := range items {
		n := i + 1
		obj, ok := it.(map[string]any)
		if !ok {
			bad.add("item %d is not an object with \"question\" and \"answer\"", n)
			continue
		}
		q, qErr := jsonString(obj, "question")
		a, aErr := jsonString(obj, "answer")
		tags, tErr := jsonTags(obj)
		q, a = oneLine(q), cleanText(a)
		switch {
		case qErr != "":
			bad.add("item %d: %s", n, qErr)
		case aErr != "":
			bad.add("item %d: %s", n, aErr)
		case tErr != "":
			bad.add("item %d: %s", n, tErr)
		case q == "" && a == "":
			bad.add("item %d has no question and no answer", n)
		case q == "":
			bad.add("item %d has an answer but no question", n)
		case a == "":
			bad.add("item %d (%q) has no answer", n, truncateRunes(q, 60))
		default:
			chunks = append(chunks, Chunk{Question: q, Text: a, Tags: tags})
		}
	}
	if err := bad.err(); err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, errs.Errorf(errs.Invalid, "the JSON file has no FAQ items; it must be %s", jsonShape)
	}
	return &Parsed{Chunks: chunks}, nil
}

// lookup finds key in obj, exactly or else ignoring case (in a fixed order,
// so the result does not depend on map iteration).
func lookup(obj map[string]any, key string) (any, bool) {
	if v, ok := obj[key]; ok {
		return v, true
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.EqualFold(strings.TrimSpace(k), key) {
			return obj[k], true
		}
	}
	return nil, false
}

// jsonString returns a text field, or a problem to report.
func jsonString(obj map[string]any, key string) (string, string) {
	v, ok := lookup(obj, key)
	if !ok || v == nil {
		return "", ""
	}
	switch v := v.(type) {
	case string:
		return v, ""
	case json.Number:
		return v.String(), ""
	}
	return "", fmt.Sprintf("%q must be text", key)
}

func jsonTags(obj map[string]any) ([]string, string) {
	v, ok := lookup(obj, "tags")
	if !ok || v == nil {
		return nil, ""
	}
	switch v := v.(type) {
	case string:
		return splitTags(v), ""
	case []any:
		var tags []string
		for _, t := range v {
			s, ok := t.(string)
			if !ok {
				return nil, `"tags" must be a list of text`
			}
			if s = oneLine(s); s != "" && !slices.Contains(tags, s) {
				tags = append(tags, s)
			}
		}
		return tags, ""
	}
	return nil, `"tags" must be a list of text or one text`
}

// jsonError explains a decoding error with its line and column.
func jsonError(s string, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(s, se.Offset)
		return errs.Errorf(errs.Invalid, "the JSON file is not valid JSON: %v at line %d, column %d", se.Error(), line, col)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errs.Errorf(errs.Invalid, "the JSON file ends too early; it must be %s", jsonShape)
	}
	return errs.Errorf(errs.Invalid, "the JSON file could not be read; it must be %s", jsonShape)
}

func lineCol(s string, offset int64) (line, col int) {
	if offset > int64(len(s)) {
		offset = int64(len(s))
	}
	before := s[:offset]
	line = strings.Count(before, "\n") + 1
	col = len(before) - strings.LastIndexByte(before, '\n')
	return line, col
}
