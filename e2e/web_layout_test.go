package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/chromedp"
)

// webLayoutJS lists, in words, what sticks out sideways on the page: the
// page or the conversation wider than its box, a bubble outside the
// conversation, a bubble whose content is wider than the bubble, a block
// outside its bubble or wider than itself without a way to scroll it.
const webLayoutJS = `(() => {
	const bad = [];
	const px = (n) => Math.round(n) + 'px';
	const de = document.documentElement;
	if (de.scrollWidth > de.clientWidth) bad.push('the page is ' + px(de.scrollWidth) + ' wide in a ' + px(de.clientWidth) + ' window: it scrolls sideways');
	const log = document.getElementById('log');
	if (log.scrollWidth > log.clientWidth) bad.push('the conversation is ' + px(log.scrollWidth) + ' wide in its ' + px(log.clientWidth) + ' box: it scrolls sideways');
	const box = log.getBoundingClientRect();
	document.querySelectorAll('#log .msg').forEach((m, i) => {
		const b = m.querySelector('.bubble');
		const r = b.getBoundingClientRect();
		const what = 'bubble ' + i + ' ' + JSON.stringify(b.innerText.slice(0, 30));
		if (r.left < box.left - 0.5 || r.right > box.right + 0.5) bad.push(what + ' spans ' + px(r.left) + '..' + px(r.right) + ', outside the conversation ' + px(box.left) + '..' + px(box.right));
		if (b.scrollWidth > b.clientWidth + 1) bad.push(what + ': its content is ' + px(b.scrollWidth) + ' wide, the bubble ' + px(b.clientWidth));
		b.querySelectorAll('pre').forEach((p) => {
			const pr = p.getBoundingClientRect();
			if (pr.left < r.left - 0.5 || pr.right > r.right + 0.5) bad.push(what + ': its block spans ' + px(pr.left) + '..' + px(pr.right) + ', outside the bubble ' + px(r.left) + '..' + px(r.right));
			if (p.scrollWidth > p.clientWidth + 1 && !/auto|scroll/.test(getComputedStyle(p).overflowX)) bad.push(what + ': its block is cut off (' + px(p.scrollWidth) + ' in ' + px(p.clientWidth) + ') and cannot scroll');
		});
	});
	return bad;
})()`

// Issue 13: wide replies stay inside their bubbles, and the page never
// scrolls sideways, on a phone (390 px) and on a desktop (1,200 px): the
// three laws (long lines in a monospace block), help, a service's
// definition, and a long word without a break.
func TestWebChatLayout(t *testing.T) {
	in := webInput(t, "--web_address", "127.0.0.1:0")
	webAllInOne(t, in)
	url := webURL(t, in)
	ctx := webBrowser(t)
	long := strings.Repeat("supercalifragilistic", 15) // 300 letters, nowhere to break
	for _, width := range []int64{390, 1200} {
		t.Run(fmt.Sprint(width, "px"), func(t *testing.T) {
			webRun(t, ctx, "viewport", chromedp.EmulateViewport(width, 800))
			webOpen(t, ctx, url)
			webRun(t, ctx, "clear", chromedp.Click("#clear", chromedp.ByQuery), webWait(`document.querySelectorAll('#log .msg').length === 0`))
			if w := webText(t, ctx, `String(document.documentElement.clientWidth)`); w != fmt.Sprint(width) {
				t.Fatalf("the window is %s px wide, want %d", w, width)
			}
			for _, q := range []struct{ say, want string }{
				{"the three laws", "1. A robot may not injure a human being"},
				{"help", "ping - Returns pong"},
				{"get service go.micro.bot.echo", "go.micro.bot.echo"},
				{"echo " + long, long},
			} {
				if a := webAsk(t, ctx, q.say); a.Kind != "reply" || !strings.Contains(a.Text, q.want) {
					t.Fatalf("%.40s: page shows %+v, want a reply with %q", q.say, a, q.want)
				}
			}
			webScreenshot(t, ctx, fmt.Sprintf("web-chat-layout-%d.png", width))
			var bad []string
			webRun(t, ctx, "measure", chromedp.Evaluate(webLayoutJS, &bad))
			for _, b := range bad {
				t.Errorf("at %d px: %s", width, b)
			}
		})
	}
}

// webGlyph is how one character of a reply is drawn with its bubble's
// fonts.
type webGlyph struct {
	Char   string `json:"char"`
	Ink    int    `json:"ink"`    // pixels drawn
	Notdef bool   `json:"notdef"` // drawn exactly as the .notdef box of a character no font has
	Color  int    `json:"color"`  // pixels in colour (not grey)
}

// webGlyphsJS draws each of chars on a canvas with the font of the element
// sel (the page's font stack, so the same font matching as the reply) and
// compares it with U+0378, a code point no font has, which Chromium draws
// as the first font's .notdef box: a character without a font looks just
// like it.
func webGlyphsJS(sel string, chars []string) string {
	q := make([]string, len(chars))
	for i, c := range chars {
		q[i] = fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf(`(() => {
	const cs = getComputedStyle(document.querySelector(%q));
	const c = document.createElement('canvas');
	c.width = 96; c.height = 96;
	const g = c.getContext('2d', {willReadFrequently: true});
	g.font = '64px ' + cs.fontFamily;
	g.textBaseline = 'middle';
	const draw = (ch) => {
		g.clearRect(0, 0, 96, 96);
		g.fillStyle = '#000';
		g.fillText(ch, 8, 48);
		return g.getImageData(0, 0, 96, 96).data;
	};
	const notdef = draw('\u0378');
	return [%s].map((ch) => {
		const d = draw(ch);
		let ink = 0, color = 0, same = true;
		for (let i = 0; i < d.length; i += 4) {
			if (d[i+3] > 0) ink++;
			if (d[i+3] > 128 && Math.max(d[i], d[i+1], d[i+2]) - Math.min(d[i], d[i+1], d[i+2]) > 60) color++;
			if (same && (d[i] !== notdef[i] || d[i+1] !== notdef[i+1] || d[i+2] !== notdef[i+2] || d[i+3] !== notdef[i+3])) same = false;
		}
		return {char: ch, ink, notdef: same, color};
	});
})()`, sel, strings.Join(q, ", "))
}

// webFonts returns the fonts Chromium drew the text of the element sel
// with, as "family ×glyphs".
func webFonts(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	var nodes []cdp.NodeID
	var used []*css.PlatformFontUsage
	webRun(t, ctx, "fonts of "+sel, chromedp.NodeIDs(sel, &nodes, chromedp.ByQuery), chromedp.ActionFunc(func(ctx context.Context) error {
		if err := css.Enable().Do(ctx); err != nil {
			return err
		}
		var err error
		used, err = css.GetPlatformFontsForNode(nodes[0]).Do(ctx)
		return err
	}))
	var s []string
	for _, f := range used {
		s = append(s, fmt.Sprintf("%s ×%g", f.FamilyName, f.GlyphCount))
	}
	return strings.Join(s, ", ")
}

// webFontAdvice says why a character may lack its font: no font on the
// machine has it (and which Debian package brings one), or fontconfig,
// which Chromium uses on Linux, knows fonts that have it and the page's
// font stack does not reach them first.
func webFontAdvice(char string, colour bool) string {
	pkg := "a CJK font: Debian's fonts-wqy-zenhei (or fonts-noto-cjk)"
	query := fmt.Sprintf(":charset=%x", []rune(char)[0])
	if colour {
		pkg = "a colour emoji font: Debian's fonts-noto-color-emoji"
		query += ":color=true"
	}
	out, err := exec.Command("fc-list", query, "family").Output()
	if err != nil {
		return fmt.Sprintf("install %s (fc-list, which would say which fonts have it, failed: %v)", pkg, err)
	}
	have := strings.TrimSpace(string(out))
	if have == "" {
		return "no font on this machine has it: install " + pkg
	}
	return fmt.Sprintf("the machine has fonts with it (%s) but the page's font stack (--sans, --mono in gateway/adapter/web/static/app.css) does not reach them first", strings.ReplaceAll(have, "\n", "; "))
}

// Issue 13: emoji and Chinese in a reply are drawn as themselves, not as
// boxes, both in prose and in a monospace block. This needs fonts on the
// machine (the page names them; it ships none): a machine without them
// fails here, naming the Debian package to install.
func TestWebChatEmojiAndCJK(t *testing.T) {
	in := webInput(t, "--web_address", "127.0.0.1:0")
	webAllInOne(t, in)
	ctx := webBrowser(t)
	webOpen(t, ctx, webURL(t, in))

	const emoji, cjk = "😀🚀", "你好世界"
	prose := "hello " + cjk + " " + emoji
	block := `{"greeting": "` + cjk + ` ` + emoji + `"}`
	for _, tc := range []struct {
		name, say string
		block     bool
	}{
		{"prose", prose, false},
		{"block", block, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := webSay(t, ctx, "echo "+tc.say)
			a := webAwait(t, ctx, n, true)
			if a.Kind != "reply" || a.Text != tc.say || a.Block != tc.block {
				t.Fatalf("page shows %+v, want the reply %q (block %t)", a, tc.say, tc.block)
			}
			sel := fmt.Sprintf(`.msg.bot[data-for="%s"] .bubble`, webText(t, ctx, fmt.Sprintf(`document.querySelectorAll('.msg.me')[%d].dataset.id`, n)))
			if tc.block {
				sel += " pre code"
			}
			fonts := webFonts(t, ctx, sel)
			t.Logf("%s: drawn with %s (font-family %s)", tc.name, fonts, a.Font)
			var glyphs []webGlyph
			webRun(t, ctx, "draw", chromedp.Evaluate(webGlyphsJS(sel, append(strings.Split(emoji, ""), strings.Split(cjk, "")...)), &glyphs))
			for _, g := range glyphs {
				isEmoji := strings.Contains(emoji, g.Char)
				switch {
				case g.Ink == 0 || g.Notdef:
					t.Errorf("%s: %s shows as a box (%d pixels, the same as a character no font has; the reply is drawn with %s): %s",
						tc.name, g.Char, g.Ink, fonts, webFontAdvice(g.Char, isEmoji))
				case isEmoji && g.Color < 50:
					t.Errorf("%s: %s is drawn in black and white (%d coloured pixels of %d; the reply is drawn with %s): %s",
						tc.name, g.Char, g.Color, g.Ink, fonts, webFontAdvice(g.Char, true))
				}
			}
			webScreenshot(t, ctx, "web-chat-emoji-cjk-"+tc.name+".png")
		})
	}
}
