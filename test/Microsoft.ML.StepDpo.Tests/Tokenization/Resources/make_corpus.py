"""Writes math-corpus.jsonl: one JSON string per line, the tokenizer parity corpus.

Hand-written tricky lines first, then lines generated from a fixed seed. Rerun with
`python3 make_corpus.py` (any Python 3); the output is deterministic.
"""
import json
import random

HAND = [
    "",
    " ",
    "   ",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "What is 2+2?",
    "The answer is $\\boxed{42}$.",
    "Let $x = \\frac{1}{2}$ and $y = \\sqrt{3}$; then $x^2 + y^2 = \\frac{13}{4}$.",
    "\\begin{align} a &= b + c \\\\ d &= e - f \\end{align}",
    "$$\\int_0^1 x^2\\,dx = \\left[\\frac{x^3}{3}\\right]_0^1 = \\frac{1}{3}$$",
    "\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}",
    "\\lim_{x \\to \\infty} \\left(1 + \\frac{1}{x}\\right)^x = e",
    "\\mathbb{R}, \\mathcal{F}, \\mathfrak{g}, \\operatorname{lcm}(12, 18) = 36",
    "Step 1: 12 * 7 = 84.\nStep 2: 84 + 16 = 100.\nThe answer is 100.",
    "Step 1: 6*9=54.\nStep 2: 12+54=66.\nStep 3: 66+24=90.\nThe answer is 90.",
    "1234567890",
    "3.14159265358979323846",
    "-42, +17, 1e-10, 6.02e23, 1,000,000, 0.000001",
    "$12.50 + €3,99 = ¥?  100% of 50% is 50%.",
    "x² + y² = z²; x₁, x₂, …, xₙ",
    "∑ ∫ ∮ √2 π ≈ 3.14, ∞ ≠ ∅, a ≤ b ≥ c, 6 × 7 ÷ 2 ± 1, ∀ε>0 ∃δ>0",
    "∂f/∂x = 2x, ∇·F = 0, ℝ³ ⊂ ℂ³, ℕ ∩ ℤ = ℕ",
    "Mathematical italic: 𝑥 + 𝑦 = 𝑧, a𝑥b, 𝑓(𝑥) = 𝑥²",
    "Double-struck: 𝔽_p, 𝟙_{A}, 𝟘𝟙𝟚𝟛, 𝔸𝔹ℂ",
    "Bold fraktur 𝖆𝖇𝖈 and script 𝒜ℬ𝒞 and monospace 𝚊𝚋𝚌𝟶𝟷𝟸",
    "'𝐬 '𝐬x 𝐬's",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇺🇸 ❤️ 😀abc x😀y 😀😀😀",
    "🧮 The abacus says 7. 🎉🎉",
    "解方程 x+1=2，得 x=1。答案是 1。",
    "第3步：把 12 和 30 相加得到 42。",
    "数学は楽しい！ 二次方程式 ax²+bx+c=0 の解は？",
    "수학 문제: 3 더하기 4는 7입니다.",
    "Hangul jamo: \u1100\u1161\u11a8 (composes under NFC)",
    "العدد ٣ زائد ٤ يساوي ٧",
    "गणित: २ + २ = ४",
    "Ελληνικά: α + β = γ, Δx → 0, Σ, Ω, λ = 2π/k",
    "Русский: решите уравнение 2x + 3 = 7.",
    "Composed é vs decomposed e\u0301; A\u030a vs Å; \u212b (angstrom sign); \u2126 ohm; \u212a kelvin",
    "n\u0303o\u0308 stacked marks: a\u0301\u0302\u0303",
    "<|im_end|>\u0338 and <\u0338 and >\u0338 (NFC would compose these)",
    "Greek question mark\u037e semicolon; ano teleia\u0387",
    "Whitespace runs:     four spaces,\t\ttwo tabs,\u00a0nbsp,\u3000ideographic,\u2003em space.",
    "Trailing spaces   ",
    "   Leading spaces",
    "Blank lines\n\n\nthree of them",
    "Mixed\r\n\r\nCRLF\r\nlines\r\n",
    "Old Mac\rline\rendings\r",
    "spaces before newline   \n   and after",
    "tab\there\tand\tthere",
    "Zero\u200bwidth\u200c joiner\u200d and BOM\ufeff inside",
    "Don't, won't, I'm, you're, we've, they'll, she'd, it's.",
    "DON'T WON'T I'M YOU'RE WE'VE THEY'LL SHE'D IT'S",
    "O'Neil's rock'n'roll isn't 'quoted' ''double''",
    "long-s contraction: it'ſ and 'ſ",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 3+4?\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>assistant\nStep 1: 3+4=7.\nThe answer is \\boxed{7}.<|im_end|><|endoftext|>",
    "<think>\nLet me think about 17*3.\n</think>\n\n51",
    "<tool_call>{\"name\": \"calc\", \"arguments\": {\"expr\": \"2+2\"}}</tool_call>",
    "<|fim_prefix|>def f(x):<|fim_suffix|>    return y<|fim_middle|>    y = x + 1",
    "Partial specials: <|im_start <|im_end| |im_end|> <|endoftext <<|im_start|>> <|<|im_end|>|>",
    "<|im_start|><|im_start|><|im_end|><|im_end|>",
    "text<|endoftext|>text<|endoftext|>",
    "<|vision_start|><|image_pad|><|vision_end|> <|box_start|>(1,2)<|box_end|>",
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nCompute 7*8.\n\n### Response:\nLet's think step by step.\nStep 1: ",
    "User: Compute 7*8.\nPlease reason step by step, and put your final answer within \\boxed{}.\n\nAssistant:",
    "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "https://example.com/path?q=1&r=2#frag",
    "email@example.org, @user #hashtag",
    "((((((nested))))))  [[[brackets]]]  {{{braces}}}",
    "!!!???...,,,;;;:::---___===+++***///\\\\\\|||",
    "a" * 300,
    "1" * 120,
    "ab " * 80,
    "9" + " " * 40 + "9",
    "\\frac{\\frac{1}{2}}{\\frac{3}{4}} = \\frac{2}{3}",
    "The probability is $\\binom{5}{2} \\cdot 0.3^2 \\cdot 0.7^3 \\approx 0.3087$.",
    "If $f(x) = 3x^2 - 2x + 1$, then $f'(x) = 6x - 2$ and $f''(x) = 6$.",
    "Solve: $|2x - 5| < 3 \\implies 1 < x < 4$.",
    "Matrix: \\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}^{-1} = \\frac{1}{-2}\\begin{pmatrix} 4 & -2 \\\\ -3 & 1 \\end{pmatrix}",
    "10:30 am, 2024-06-27, 3/4 cup, 1:2:3 ratio, 45°C = 113°F",
    "ⅠⅡⅢⅣ roman numerals, ①②③ circled, ½ ¼ ¾ vulgar fractions, ⁴⁵ superscripts",
    "Control chars: \u0001\u0002\u001f and DEL \u007f and \u0085 next line",
    "Line separator\u2028paragraph separator\u2029end",
    "Private use \ue000\uf8ff and replacement \ufffd",
    "Tokenizer seam: The answ",
    "er is 5.",
]

NAMES = ["Mia", "Noah", "Ava", "Liam", "Zoë", "José", "Łukasz", "Ngozi", "Chen Wei", "Søren", "Aroha", "İlkay"]
ITEMS = ["books", "apples", "marbles", "stickers", "coins", "pencils", "cookies", "stamps"]
VERBS = ["buys", "finds", "gets", "receives", "collects"]
OPS = [("+", lambda a, b: a + b), ("-", lambda a, b: a - b), ("*", lambda a, b: a * b)]
LATEX = [
    "\\frac{{{a}}}{{{b}}}", "\\sqrt{{{a}}}", "{a}^{{{b}}}", "\\binom{{{a}}}{{{b}}}", "\\log_{{{b}}} {a}",
    "\\sin({a}^\\circ)", "\\left({a} + {b}\\right)^2", "\\overline{{{a}{b}}}", "{a} \\equiv {b} \\pmod{{7}}",
    "\\lfloor {a}/{b} \\rfloor", "\\cdot {a} \\times {b}", "\\text{{{a} apples}}",
]
UNI = ["α", "β", "γ", "θ", "π", "∑", "∫", "√", "≤", "≥", "≠", "→", "∞", "°", "·", "×", "÷", "−", "…", "€",
       "😀", "🎉", "👍🏽", "𝑥", "𝑦", "𝟙", "ℝ", "解", "数", "é", "e\u0301", "ñ", "ß", "ﬁ", "Ω", "\u00a0", "\u3000"]
WS = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\n ", "\r", "\u00a0", "\t\t ", "    "]
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<|fim_middle|>"]


def word_problem(rng):
    n, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b, c = rng.randint(2, 99), rng.randint(2, 12), rng.randint(2, 12)
    steps, total = [], a
    text = f"{n} has {a} {item}. {n} {rng.choice(VERBS)} {b} boxes of {c}. How many {item} now?"
    steps.append(f"Step 1: {b}*{c}={b * c}.")
    steps.append(f"Step 2: {a}+{b * c}={a + b * c}.")
    steps.append(f"The answer is {a + b * c}.")
    sep = rng.choice(["\n", " ", "\r\n", "\n\n"])
    return text + sep + sep.join(steps)


def arithmetic(rng):
    terms = [str(rng.randint(0, 10 ** rng.randint(1, 7))) for _ in range(rng.randint(2, 5))]
    ops = [rng.choice(OPS)[0] for _ in terms[1:]]
    expr = terms[0] + "".join(rng.choice(["", " "]) + o + rng.choice(["", " "]) + t for o, t in zip(ops, terms[1:]))
    return expr + rng.choice([" = ?", "=", " equals what?", ""])


def latex(rng):
    parts = []
    for _ in range(rng.randint(1, 4)):
        parts.append(rng.choice(LATEX).format(a=rng.randint(1, 999), b=rng.randint(1, 99)))
    body = rng.choice([" + ", " - ", " = ", " \\cdot ", ", "]).join(parts)
    return rng.choice(["$", "$$", "\\(", "\\["]) + body + rng.choice(["$", "$$", "\\)", "\\]"])


def unicode_mix(rng):
    out = []
    for _ in range(rng.randint(3, 12)):
        r = rng.random()
        if r < 0.3:
            out.append(rng.choice(UNI))
        elif r < 0.5:
            out.append(str(rng.randint(0, 9999)))
        elif r < 0.8:
            out.append(rng.choice(["x", "y", "abc", "The", "sum", "ratio", "isn't", "it's"]))
        else:
            out.append(rng.choice(WS))
    return rng.choice(["", " "]).join(out)


def whitespace(rng):
    return "".join(rng.choice(WS + ["a", "1", ".", "word", "€"]) for _ in range(rng.randint(2, 14)))


def chat(rng):
    user = word_problem(rng).split("\n")[0]
    line = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    if rng.random() < 0.5:
        line += "<think>\n" + arithmetic(rng) + "\n</think>\n"
    return line + rng.choice(["Step 1: ", "The answer is ", ""]) + str(rng.randint(0, 500)) + rng.choice(["<|im_end|>", "<|endoftext|>", ""])


def specials_glued(rng):
    return "".join(rng.choice(SPECIAL + [" ", "x", "12", "\n", "<|", "|>", "<", ">"]) for _ in range(rng.randint(3, 10)))


def main():
    rng = random.Random(20240627)
    lines = list(HAND)
    makers = [word_problem, arithmetic, latex, unicode_mix, whitespace, chat, specials_glued]
    while len(lines) < 720:
        lines.append(rng.choice(makers)(rng))
    with open("math-corpus.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
