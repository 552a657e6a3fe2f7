"""Value generators for the PII corpus: every validated type gets a valid value
(check digits computed here), and checksum-failing look-alikes for the hard
negatives. All randomness comes from the `random.Random` passed in."""

import base64
import datetime
import hashlib
import json
import string

DIG = string.digits
UP = string.ascii_uppercase
LOW = string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits
B32 = UP + "234567"

# ----------------------------------------------------------------- checksums


def luhn_ok(num):
    d = [int(c) for c in num if c.isdigit()]
    s = 0
    for i, x in enumerate(reversed(d)):
        if i % 2 == 1:
            x *= 2
            if x > 9:
                x -= 9
        s += x
    return s % 10 == 0


def luhn_digit(body):
    for c in DIG:
        if luhn_ok(body + c):
            return c
    raise AssertionError


def iban_mod97(iban):
    s = iban.replace(" ", "")
    s = s[4:] + s[:4]
    n = "".join(str(int(c, 36)) for c in s)
    return int(n) % 97


def iban_ok(iban):
    return iban_mod97(iban) == 1


def iban_check(cc, bban):
    s = bban + cc + "00"
    n = int("".join(str(int(c, 36)) for c in s))
    return f"{98 - n % 97:02d}"


def ssn_ok(area, group, serial):
    return 0 < area < 900 and area != 666 and group > 0 and serial > 0


NIN_BAD_FIRST = set("DFIQUV")
NIN_BAD_SECOND = set("DFIOQUV")
NIN_BAD_PREFIX = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def nin_ok(v):
    v = v.replace(" ", "")
    return (len(v) == 9 and v[0] not in NIN_BAD_FIRST and v[1] not in NIN_BAD_SECOND and v[:2] not in NIN_BAD_PREFIX
            and v[2:8].isdigit() and v[8] in "ABCD")


def nhs_check(d9):
    s = sum(int(c) * (10 - i) for i, c in enumerate(d9))
    r = 11 - s % 11
    return 0 if r == 11 else (None if r == 10 else r)


DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_letter(n):
    return DNI_LETTERS[n % 23]


CF_ODD = {**{str(i): v for i, v in enumerate([1, 0, 5, 7, 9, 13, 15, 17, 19, 21])},
          **dict(zip(UP, [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
                          23]))}


def cf_control(cf15):
    s = 0
    for i, c in enumerate(cf15):
        if i % 2 == 0:  # 1st, 3rd, ... (odd positions, 1-based)
            s += CF_ODD[c]
        else:
            s += int(c) if c.isdigit() else ord(c) - 65
    return UP[s % 26]


def bsn_ok(v):
    if len(v) != 9 or not v.isdigit():
        return False
    s = sum(int(c) * (9 - i) for i, c in enumerate(v[:8])) - int(v[8])
    return s % 11 == 0


def nir_key(n13):
    return 97 - int(n13) % 97


def de_taxid_check(d10):
    product = 10
    for c in d10:
        s = (int(c) + product) % 10
        if s == 0:
            s = 10
        product = (s * 2) % 11
    c = 11 - product
    return 0 if c == 10 else c


def de_taxid_digits_ok(d10):
    """The first ten digits of a Steuer-ID: no leading 0, exactly one digit twice or
    three times and the others at most once; a digit three times not three in a row
    (BZSt rule since 2016: 1112345678 is no tax id, 1121345678 is)."""
    if d10[0] == "0":
        return False
    counts = sorted((d10.count(c) for c in set(d10)), reverse=True)
    if counts[0] not in (2, 3) or not all(x == 1 for x in counts[1:]):
        return False
    return not any(d10[i] == d10[i + 1] == d10[i + 2] for i in range(8))


def aba_ok(v):
    d = [int(c) for c in v]
    return len(d) == 9 and (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])) % 10 == 0


# ----------------------------------------------------------------- generators


def rs(rng, alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def credit_card(rng, valid=True):
    kind = rng.choice(["visa", "visa", "mc", "mc2", "amex", "disc"])
    if kind == "visa":
        body, n = "4" + rs(rng, DIG, 14), 16
    elif kind == "mc":
        body, n = str(rng.randint(51, 55)) + rs(rng, DIG, 13), 16
    elif kind == "mc2":
        body, n = str(rng.randint(2221, 2720)) + rs(rng, DIG, 11), 16
    elif kind == "amex":
        body, n = rng.choice(["34", "37"]) + rs(rng, DIG, 12), 15
    else:
        body, n = "6011" + rs(rng, DIG, 11), 16
    num = body + luhn_digit(body)
    if not valid:
        last = int(num[-1])
        num = num[:-1] + str((last + rng.randint(1, 9)) % 10)
        assert not luhn_ok(num)
    sep = rng.choice(["", " ", " ", "-"])
    if n == 15:
        return sep.join([num[:4], num[4:10], num[10:]]) if sep else num
    return sep.join(num[i:i + 4] for i in range(0, 16, 4)) if sep else num


IBAN_BBAN = {  # country: list of (alphabet, length)
    "DE": [(DIG, 18)], "FR": [(DIG, 10), (UP + DIG, 11), (DIG, 2)], "ES": [(DIG, 20)],
    "IT": [(UP, 1), (DIG, 10), (UP + DIG, 12)], "NL": [(UP, 4), (DIG, 10)], "GB": [(UP, 4), (DIG, 14)],
    "BE": [(DIG, 12)], "AT": [(DIG, 16)], "CH": [(DIG, 17)], "PT": [(DIG, 21)], "BR": [(DIG, 23), (UP, 1), (UP + DIG, 1)],
    "IE": [(UP, 4), (DIG, 14)], "PL": [(DIG, 24)],
}
LOCALE_IBAN = {"de_DE": "DE", "fr_FR": "FR", "es_ES": "ES", "it_IT": "IT", "nl_NL": "NL", "en_GB": "GB",
               "pt_BR": "BR", "en_US": None, "en_IN": None, "en_AU": None}


def iban(rng, locale, valid=True):
    cc = LOCALE_IBAN.get(locale) or rng.choice(["DE", "GB", "FR", "NL", "IE", "BE"])
    if rng.random() < 0.2:
        cc = rng.choice(sorted(IBAN_BBAN))
    bban = "".join(rs(rng, a, n) for a, n in IBAN_BBAN[cc])
    chk = iban_check(cc, bban)
    v = cc + chk + bban
    assert iban_ok(v)
    if not valid:
        bad = (int(chk) + rng.randint(1, 50)) % 97
        bad = max(bad, 2)
        v = cc + f"{bad:02d}" + bban
        if iban_ok(v):
            v = cc + f"{(bad + 1) % 97 or 2:02d}" + bban
        assert not iban_ok(v)
    if rng.random() < 0.6:
        v = " ".join(v[i:i + 4] for i in range(0, len(v), 4))
    return v


def us_ssn(rng, valid=True):
    if valid:
        while True:
            a, g, s = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
            if ssn_ok(a, g, s):
                break
    else:
        a = rng.choice([0, 666, rng.randint(900, 999)])
        g, s = rng.randint(1, 99), rng.randint(1, 9999)
    return rng.choice(["{:03d}-{:02d}-{:04d}", "{:03d}-{:02d}-{:04d}", "{:03d} {:02d} {:04d}"]).format(a, g, s)


def uk_nin(rng):
    while True:
        v = rng.choice(UP) + rng.choice(UP) + rs(rng, DIG, 6) + rng.choice("ABCD")
        if nin_ok(v):
            break
    if rng.random() < 0.5:
        return f"{v[:2]} {v[2:4]} {v[4:6]} {v[6:8]} {v[8]}"
    return v


def nhs(rng, valid=True):
    while True:
        d9 = rs(rng, DIG, 9)
        c = nhs_check(d9)
        if c is not None:
            break
    if not valid:
        c = (c + rng.randint(1, 9)) % 10
        if nhs_check(d9) == c:
            c = (c + 1) % 10
    v = d9 + str(c)
    return rng.choice([f"{v[:3]} {v[3:6]} {v[6:]}", f"{v[:3]} {v[3:6]} {v[6:]}", v, f"{v[:3]}-{v[3:6]}-{v[6:]}"])


def es_dni(rng):
    n = rng.randint(1, 99999999)
    return rng.choice(["{:08d}{}", "{:08d}-{}", "{:08d}{}"]).format(n, dni_letter(n))


def es_nie(rng):
    p = rng.randint(0, 2)
    n = rng.randint(0, 9999999)
    letter = dni_letter(int(f"{p}{n:07d}"))
    return rng.choice(["{}{:07d}{}", "{}-{:07d}-{}", "{}{:07d}{}"]).format("XYZ"[p], n, letter)


CONSONANTS = "BCDFGHJKLMNPQRSTVWXYZ"
CF_MONTHS = "ABCDEHLMPRST"


def it_cf(rng):
    sur = rs(rng, CONSONANTS, 3)
    nam = rs(rng, CONSONANTS, 3)
    yy = f"{rng.randint(0, 99):02d}"
    m = rng.choice(CF_MONTHS)
    day = rng.randint(1, 28) + (40 if rng.random() < 0.5 else 0)
    place = rng.choice("ABCDEFGHILM") + f"{rng.randint(1, 999):03d}"
    cf15 = sur + nam + yy + m + f"{day:02d}" + place
    return cf15 + cf_control(cf15)


def nl_bsn(rng):
    while True:
        v = str(rng.randint(1, 9)) + rs(rng, DIG, 8)
        if bsn_ok(v):
            return v


def fr_nir(rng):
    sex = rng.choice("12")
    yy = f"{rng.randint(40, 99):02d}" if rng.random() < 0.7 else f"{rng.randint(0, 5):02d}"
    mm = f"{rng.randint(1, 12):02d}"
    dep = f"{rng.randint(1, 95):02d}"
    com = f"{rng.randint(1, 990):03d}"
    order = f"{rng.randint(1, 999):03d}"
    n13 = sex + yy + mm + dep + com + order
    key = f"{nir_key(n13):02d}"
    if rng.random() < 0.6:
        return f"{sex} {yy} {mm} {dep} {com} {order} {key}"
    return n13 + key


def de_taxid(rng):
    while True:
        d10 = str(rng.randint(1, 9)) + rs(rng, DIG, 9)
        if de_taxid_digits_ok(d10):
            break
    v = d10 + str(de_taxid_check(d10))
    return rng.choice([v, v, f"{v[:2]} {v[2:5]} {v[5:8]} {v[8:]}"])


ABA_PREFIX = list(range(1, 13)) + list(range(21, 33)) + list(range(61, 73)) + [80]


def aba(rng):
    while True:
        v = f"{rng.choice(ABA_PREFIX):02d}" + rs(rng, DIG, 6)
        for c in DIG:
            if aba_ok(v + c):
                return v + c


def passport(rng, locale):
    if locale == "en_US":
        return rs(rng, DIG, 9) if rng.random() < 0.6 else rng.choice(UP) + rs(rng, DIG, 8)
    if locale in ("en_GB",):
        return rs(rng, DIG, 9)
    if locale == "de_DE":
        return rng.choice("CFGHJK") + rs(rng, "CFGHJKLMNPRTVWXYZ0123456789", 8)
    if locale == "fr_FR":
        return rs(rng, DIG, 2) + rs(rng, UP, 2) + rs(rng, DIG, 5)
    if locale == "es_ES":
        return rs(rng, UP, 3) + rs(rng, DIG, 6)
    if locale == "it_IT":
        return rs(rng, UP, 2) + rs(rng, DIG, 7)
    if locale == "nl_NL":  # Dutch document numbers never use the letter O
        nl = UP.replace("O", "")
        return rs(rng, nl, 2) + rs(rng, nl + DIG, 6) + rs(rng, DIG, 1)
    if locale == "pt_BR":
        return rs(rng, UP, 2) + rs(rng, DIG, 6)
    if locale == "en_IN":
        return rng.choice(UP) + rs(rng, DIG, 7)
    return rng.choice("NPE") + rs(rng, DIG, 7)  # en_AU


def ipv4(rng):
    first = rng.choice([10, 172, 192, rng.randint(11, 223)])
    return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ipv6(rng):
    groups = [f"{rng.randint(0, 65535):x}" for _ in range(8)]
    if rng.random() < 0.5:
        return "2001:db8:" + ":".join(groups[2:4]) + "::" + groups[7]
    return ":".join(groups)


def ip(rng):
    return ipv4(rng) if rng.random() < 0.75 else ipv6(rng)


def mac(rng):
    b = [rng.randint(0, 255) for _ in range(6)]
    sep = rng.choice([":", ":", "-"])
    s = sep.join(f"{x:02x}" for x in b)
    return s.upper() if rng.random() < 0.4 else s


MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "de": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
    "es": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"],
    "it": ["gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre",
           "ottobre", "novembre", "dicembre"],
    "nl": ["januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december"],
    "pt": ["janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro",
           "novembro", "dezembro"],
}


def lang_of(locale):
    return locale.split("_")[0]


def fmt_date(rng, d, locale):
    lang = lang_of(locale)
    m = MONTHS[lang][d.month - 1]
    r = rng.random()
    if r < 0.15:
        return d.isoformat()
    if locale == "en_US":
        return rng.choice([f"{d.month:02d}/{d.day:02d}/{d.year}", f"{d.month}/{d.day}/{d.year}", f"{m} {d.day}, {d.year}"])
    if lang == "en":
        return rng.choice([f"{d.day:02d}/{d.month:02d}/{d.year}", f"{d.day} {m} {d.year}", f"{d.day:02d}-{d.month:02d}-{d.year}"])
    if lang == "de":
        return rng.choice([f"{d.day:02d}.{d.month:02d}.{d.year}", f"{d.day}.{d.month}.{d.year}", f"{d.day}. {m} {d.year}"])
    if lang == "nl":
        return rng.choice([f"{d.day:02d}-{d.month:02d}-{d.year}", f"{d.day} {m} {d.year}"])
    if lang == "pt":
        return rng.choice([f"{d.day:02d}/{d.month:02d}/{d.year}", f"{d.day} de {m} de {d.year}"])
    if lang == "es":
        return rng.choice([f"{d.day:02d}/{d.month:02d}/{d.year}", f"{d.day} de {m} de {d.year}"])
    return rng.choice([f"{d.day:02d}/{d.month:02d}/{d.year}", f"{d.day} {m} {d.year}"])


def birth_date(rng):
    return datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randint(0, 365 * 65))


def other_date(rng):
    return datetime.date(2019, 1, 1) + datetime.timedelta(days=rng.randint(0, 365 * 8))


def aws_access_key(rng):
    return rng.choice(["AKIA", "AKIA", "ASIA"]) + rs(rng, B32, 16)


def aws_secret_key(rng):
    return rs(rng, ALNUM + "/+", 40)


def github_token(rng):
    if rng.random() < 0.2:
        return "github_pat_" + rs(rng, ALNUM, 22) + "_" + rs(rng, ALNUM, 59)
    return rng.choice(["ghp_", "ghp_", "gho_", "ghs_", "ghu_"]) + rs(rng, ALNUM, 36)


def gitlab_token(rng):
    return "glpat-" + rs(rng, ALNUM + "-_", 20)


def openai_key(rng):
    if rng.random() < 0.5:
        return "sk-proj-" + rs(rng, ALNUM + "-_", 48) + "T3BlbkFJ" + rs(rng, ALNUM + "-_", 48)
    return "sk-" + rs(rng, ALNUM, 20) + "T3BlbkFJ" + rs(rng, ALNUM, 20)


def anthropic_key(rng):
    return "sk-ant-api03-" + rs(rng, ALNUM + "-_", 93) + "AA"


def slack_token(rng):
    return (rng.choice(["xoxb", "xoxp", "xoxa"]) + "-" + rs(rng, DIG, 11) + "-" + rs(rng, DIG, 12) + "-"
            + rs(rng, ALNUM, 24))


def google_key(rng):
    return "AIza" + rs(rng, ALNUM + "-_", 35)


def stripe_key(rng):
    return rng.choice(["sk_live_", "rk_live_", "sk_test_"]) + rs(rng, ALNUM, rng.choice([24, 34, 99]))


def b64url(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def jwt(rng):
    head = b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps({"sub": rs(rng, DIG, 8), "iat": rng.randint(1600000000, 1800000000),
                              "scope": rng.choice(["read", "admin", "user"])}, separators=(",", ":")).encode())
    return f"{head}.{body}.{rs(rng, ALNUM + '-_', 43)}"


def private_key(rng):
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    lines = [rs(rng, ALNUM + "+/", 64) for _ in range(rng.randint(2, 5))]
    lines.append(rs(rng, ALNUM + "+/", rng.randint(8, 60)) + "=")
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


WORDS = ["Summer", "Winter", "Dragon", "Monkey", "Sunshine", "Coffee", "Rocket", "Tiger", "Purple", "Falcon"]


def password(rng):
    r = rng.random()
    if r < 0.4:
        return rng.choice(WORDS) + str(rng.randint(1, 9999)) + rng.choice("!#$%&*?@")
    if r < 0.7:
        return rs(rng, ALNUM + "!#$%&*", rng.randint(10, 20))
    return rs(rng, LOW, 5) + rng.choice("._-") + rs(rng, DIG, 4) + rng.choice(UP) + rs(rng, LOW, 3)


def digest(s):
    return hashlib.sha256(s.encode("utf-8")).digest()
