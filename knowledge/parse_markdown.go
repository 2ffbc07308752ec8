package knowledge

import (
	"html"
	"regexp"
	"strings"
	"unicode/utf8"
)

var crlf = strings.NewReplacer("\r\n", "\n", "\r", "\n")

var (
	atxHeading     = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$`)
	atxClosing     = regexp.MustCompile(`(?:^|[ \t]+)#+$`)
	headingAttrs   = regexp.MustCompile(`[ \t]*\{#[^}]*\}$`)
	setextH1       = regexp.MustCompile(`^ {0,3}=+[ \t]*$`)
	setextH2       = regexp.MustCompile(`^ {0,3}-+[ \t]*$`)
	thematicBreak  = regexp.MustCompile(`^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$`)
	fenceOpen      = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})")
	listItem       = regexp.MustCompile(`^[ \t]*(?:[-*+]|(\d{1,9}[.)]))[ \t]+`)
	taskBox        = regexp.MustCompile(`^\[[ xX]\][ \t]+`)
	refDefinition  = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:[ \t]*\S`)
	tableDelimiter = regexp.MustCompile(`^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$`)
	htmlComment    = regexp.MustCompile(`(?s)<!--.*?-->`)
	frontMatterKey = regexp.MustCompile(`^[A-Za-z_][\w-]*[ \t]*:`)
	frontTitle     = regexp.MustCompile(`^title[ \t]*:[ \t]*(.*)$`)

	mdImage     = regexp.MustCompile(`!\[([^\]]*)\]\([^)]*\)`)
	mdLink      = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	mdRefLink   = regexp.MustCompile(`\[([^\]]+)\]\[[^\]]*\]`)
	mdAutolink  = regexp.MustCompile(`<((?:https?|mailto|ftp):[^>\s]*)>`)
	mdHTMLTag   = regexp.MustCompile(`</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>`)
	mdStrong    = regexp.MustCompile(`\*\*|__|~~`)
	mdEmStar    = regexp.MustCompile(`(^|[^\w*])\*([^*\s](?:[^*]*[^*\s])?)\*`)
	mdEmUnder   = regexp.MustCompile(`(^|[^\w])_([^_\s](?:[^_]*[^_\s])?)_($|[^\w])`)
	mdEscape    = regexp.MustCompile("\\\\([\\\\`*_{}\\[\\]()#+\\-.!|>~])")
	mdBoldWhole = regexp.MustCompile(`^(?:\*\*|__)(.+)(?:\*\*|__)$`)
)

// parseMarkdown splits Markdown into sections under their heading paths
// (ATX "#" and setext headings), keeping code blocks as text and reducing
// inline syntax to its text. A question heading with a short answer, "Q:"
// / "A:" paragraphs and bold questions become FAQ pairs.
func parseMarkdown(s string, opt ChunkOptions) *Parsed {
	s = crlf.Replace(s)
	title, s := frontMatter(s)
	s = htmlComment.ReplaceAllString(s, "")

	b := newBuilder(opt)
	var (
		lines      []string // the paragraph being read
		breaks     []bool   // whether each line starts a new line (a list item or a table row)
		inFence    bool
		fence      string
		fenceLines []string
	)
	flushPara := func() {
		if len(lines) == 0 {
			return
		}
		var sb strings.Builder
		for i, l := range lines {
			if i > 0 {
				if breaks[i] {
					sb.WriteByte('\n')
				} else {
					sb.WriteString(joiner(lines[i-1], l, false))
				}
			}
			sb.WriteString(l)
		}
		raw := strings.Join(lines, " ")
		text := inlineMarkdown(sb.String())
		bold := len(lines) == 1 && mdBoldWhole.MatchString(strings.TrimSpace(raw)) && isQuestion(text)
		b.paragraph(para{text: text, boldQuestion: bold})
		lines, breaks = nil, nil
	}

	for _, line := range strings.Split(s, "\n") {
		if inFence {
			if t := strings.TrimSpace(line); strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]) == "" {
				b.paragraph(para{text: strings.Join(fenceLines, "\n"), pre: true})
				inFence, fenceLines = false, nil
				continue
			}
			fenceLines = append(fenceLines, line)
			continue
		}
		if m := fenceOpen.FindStringSubmatch(line); m != nil {
			flushPara()
			inFence, fence = true, m[1]
			continue
		}
		// Block quotes read as the text they quote.
		for {
			t := strings.TrimLeft(line, " \t")
			if !strings.HasPrefix(t, ">") {
				break
			}
			line = strings.TrimPrefix(t[1:], " ")
		}
		trimmed := strings.TrimSpace(line)
		// Cheap tests of the first character spare the regular expressions
		// on most lines.
		var first byte
		if trimmed != "" {
			first = trimmed[0]
		}
		switch {
		case trimmed == "":
			flushPara()
		case first == '#' && atxHeading.MatchString(line):
			flushPara()
			m := atxHeading.FindStringSubmatch(line)
			text := atxClosing.ReplaceAllString(headingAttrs.ReplaceAllString(m[2], ""), "")
			text = inlineMarkdown(text)
			if len(m[1]) == 1 && title == "" {
				title = text
			}
			b.heading(len(m[1]), text)
		case (first == '=' || first == '-') && len(lines) > 0 && !breaks[0] && (setextH1.MatchString(line) || setextH2.MatchString(line)):
			level := 1
			if setextH2.MatchString(line) {
				level = 2
			}
			text := inlineMarkdown(strings.Join(lines, " "))
			lines, breaks = nil, nil
			if level == 1 && title == "" {
				title = text
			}
			b.heading(level, text)
		case (first == '-' || first == '*' || first == '_') && thematicBreak.MatchString(line):
			flushPara()
		case first == '[' && refDefinition.MatchString(line), strings.Contains(line, "|") && tableDelimiter.MatchString(line):
			// Link targets and table rules carry no text.
		case (first == '-' || first == '*' || first == '+' || first >= '0' && first <= '9') && listItem.MatchString(line):
			m := listItem.FindStringSubmatch(line)
			item := taskBox.ReplaceAllString(line[len(m[0]):], "")
			marker := "- "
			if m[1] != "" {
				marker = m[1] + " "
			}
			lines = append(lines, marker+item)
			breaks = append(breaks, true)
		case strings.HasPrefix(trimmed, "|"):
			cells := strings.Split(strings.Trim(trimmed, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			lines = append(lines, strings.Join(cells, " | "))
			breaks = append(breaks, true)
		default:
			lines = append(lines, trimmed)
			breaks = append(breaks, false)
		}
	}
	if inFence {
		b.paragraph(para{text: strings.Join(fenceLines, "\n"), pre: true})
	}
	flushPara()
	return &Parsed{Title: title, Chunks: b.result()}
}

// frontMatter strips a leading YAML front-matter block and returns its
// title, if any.
func frontMatter(s string) (title, rest string) {
	if !strings.HasPrefix(s, "---\n") {
		return "", s
	}
	body := s[len("---\n"):]
	end := strings.Index(body, "\n---\n")
	if end < 0 {
		if strings.HasSuffix(body, "\n---") {
			end = len(body) - len("\n---")
		} else {
			return "", s
		}
	}
	block := body[:end]
	if !frontMatterKey.MatchString(block) {
		return "", s
	}
	for _, l := range strings.Split(block, "\n") {
		if m := frontTitle.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			title = strings.Trim(strings.TrimSpace(m[1]), `"'`)
			break
		}
	}
	rest = ""
	if end+len("\n---\n") <= len(body) {
		rest = body[end+len("\n---\n"):]
	}
	return title, rest
}

// inlineMarkdown reduces inline Markdown to its text: links and images keep
// their text, emphasis marks and HTML tags go, code spans keep their
// content untouched.
func inlineMarkdown(s string) string {
	var sb strings.Builder
	for {
		i := strings.IndexByte(s, '`')
		if i < 0 {
			break
		}
		n := 1
		for i+n < len(s) && s[i+n] == '`' {
			n++
		}
		ticks := s[i : i+n]
		j := strings.Index(s[i+n:], ticks)
		if j < 0 {
			break
		}
		sb.WriteString(inlineText(s[:i]))
		sb.WriteString(strings.TrimSpace(s[i+n : i+n+j]))
		s = s[i+n+j+n:]
	}
	sb.WriteString(inlineText(s))
	return sb.String()
}

// mdEscapable are the characters a backslash escapes. While inline syntax
// is stripped they stand in the private use area, so "\\*" is not emphasis.
const mdEscapable = "\\`*_{}[]()#+-.!|>~"

func inlineText(s string) string {
	if s == "" {
		return s
	}
	escaped := strings.IndexByte(s, '\\') >= 0
	if escaped {
		s = mdEscape.ReplaceAllStringFunc(s, func(e string) string {
			return string(rune(0xE000 + strings.Index(mdEscapable, e[1:])))
		})
	}
	if strings.IndexByte(s, '[') >= 0 {
		s = mdImage.ReplaceAllString(s, "$1")
		s = mdLink.ReplaceAllString(s, "$1")
		s = mdRefLink.ReplaceAllString(s, "$1")
	}
	if strings.IndexByte(s, '<') >= 0 {
		s = mdAutolink.ReplaceAllString(s, "$1")
		s = mdHTMLTag.ReplaceAllStringFunc(s, func(tag string) string {
			if strings.HasPrefix(strings.ToLower(tag), "<br") {
				return " "
			}
			return ""
		})
	}
	if strings.ContainsAny(s, "*_~") {
		s = mdStrong.ReplaceAllString(s, "")
		s = mdEmStar.ReplaceAllString(s, "$1$2")
		s = mdEmUnder.ReplaceAllString(s, "$1$2$3")
	}
	if escaped {
		s = strings.Map(func(r rune) rune {
			if i := int(r - 0xE000); i >= 0 && i < len(mdEscapable) {
				return rune(mdEscapable[i])
			}
			return r
		}, s)
	}
	if strings.IndexByte(s, '&') >= 0 {
		s = html.UnescapeString(s)
	}
	return s
}

// parseText splits plain text into paragraphs at blank lines. A short first
// line standing alone, without closing punctuation, is the title.
func parseText(s string, opt ChunkOptions) *Parsed {
	s = crlf.Replace(s)
	var paras []string
	var cur []string
	for _, line := range strings.Split(s, "\n") {
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				paras = append(paras, strings.Join(cur, "\n"))
				cur = nil
			}
			continue
		}
		cur = append(cur, line)
	}
	if len(cur) > 0 {
		paras = append(paras, strings.Join(cur, "\n"))
	}

	var title string
	if len(paras) > 1 && looksLikeTitle(paras[0]) {
		title, paras = strings.TrimSpace(paras[0]), paras[1:]
	}
	b := newBuilder(opt)
	for _, p := range paras {
		b.paragraph(para{text: p})
	}
	return &Parsed{Title: title, Chunks: b.result()}
}

func looksLikeTitle(p string) bool {
	p = strings.TrimSpace(p)
	if strings.Contains(p, "\n") || utf8.RuneCountInString(p) > 80 {
		return false
	}
	if questionMarker.MatchString(p) {
		return false
	}
	last, _ := utf8.DecodeLastRuneInString(p)
	return !strings.ContainsRune(".!?。！？:：,，;；", last)
}
