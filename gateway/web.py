"""The public verification web page: a plain HTML form, no script, usable on any phone."""

from __future__ import annotations

from html import escape

from credence_common.contracts.verification import VERIFIER_ORGANISATION_MAX, VERIFIER_PURPOSE_MAX

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>证书查询 · Certificate check · Credence</title>
<style>
body{{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;margin:0;background:#f4f6f8;color:#1d2733}}
main{{max-width:34rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:10px;box-shadow:0 1px 4px #0002}}
h1{{font-size:1.35rem;margin-top:0}} label{{display:block;margin:.9rem 0 .3rem;font-weight:600}}
input{{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid #9aa7b4;border-radius:6px}}
button{{margin-top:1.2rem;padding:.65rem 1.4rem;font-size:1rem;background:#1f5fa8;color:#fff;border:0;border-radius:6px;cursor:pointer}}
.result{{margin-top:1.5rem;padding:1rem;border-radius:8px}} .valid{{background:#e6f4ea;border:1px solid #34a853}}
.invalid{{background:#fdecea;border:1px solid #d93025}} dt{{font-weight:600;margin-top:.4rem}}
dd{{margin:0;overflow-wrap:anywhere}}
small{{color:#5f6b7a}}
fieldset{{margin:1.2rem 0 0;padding:.2rem .9rem .9rem;border:1px solid #c9d1da;border-radius:6px;min-width:0}}
legend{{font-weight:600;padding:0 .3rem}} legend small{{display:block;font-weight:400}}
</style></head><body><main>
<h1>证书查询 <small>Certificate check</small></h1>
<p><small>非本人查询：输入获证人姓名与证书编码。Enter the holder's name and the certificate number.</small></p>
<form method="post" action="/verify">
<label for="holder_name">获证人姓名 Holder name</label>
<input id="holder_name" name="holder_name" required maxlength="40" value="{holder_name}" autocomplete="off">
<label for="certificate_number">证书编码 Certificate number</label>
<input id="certificate_number" name="certificate_number" required maxlength="40" inputmode="numeric"
 value="{certificate_number}" autocomplete="off">
<fieldset><legend>谁在查询、为何查询（选填）<small>Who is checking and why (optional)</small></legend>
<p><small>持证人可以看到这些信息。The holder sees what you write here.</small></p>
<label for="organisation">查询单位 Organisation</label>
<input id="organisation" name="organisation" maxlength="{organisation_max}" value="{organisation}"
 autocomplete="organization">
<label for="purpose">查询目的 Purpose</label>
<input id="purpose" name="purpose" maxlength="{purpose_max}" value="{purpose}" autocomplete="off">
</fieldset>
<button type="submit" id="check">查询 Check</button>
</form>
{result}
</main></body></html>
"""


def render_page(holder_name: str = "", certificate_number: str = "", result_html: str = "", organisation: str = "",
                purpose: str = "") -> str:
    """Every value typed comes back escaped: who is checking and why is free text from anyone."""
    return PAGE.format(holder_name=escape(holder_name), certificate_number=escape(certificate_number),
                       organisation=escape(organisation), purpose=escape(purpose),
                       organisation_max=VERIFIER_ORGANISATION_MAX, purpose_max=VERIFIER_PURPOSE_MAX,
                       result=result_html)


VERDICTS = {"valid": "有效 Valid", "superseded": "已被新证书取代 Superseded by a newer certificate",
            "revoked": "已撤销 Revoked"}


def render_valid(certificate: dict, result: str = "valid") -> str:
    rows = [
        ("证书编码 Certificate number", certificate["certificate_number"]),
        ("获证人 Holder", certificate["holder_name_masked"]),
        ("身份证号 ID number", certificate["resident_id_number_masked"]),
        ("项目 Program", certificate["program_name"]),
        ("发证日期 Issued on", certificate["issued_on"]),
    ]
    details = "".join(f"<dt>{escape(label)}</dt><dd>{escape(str(value))}</dd>" for label, value in rows)
    css = "valid" if result == "valid" else "invalid"
    return (f'<section class="result {css}" id="result" data-result="{escape(result)}">'
            f"<strong>{escape(VERDICTS.get(result, result))}</strong><dl>{details}</dl></section>")


def render_refusal(message: str) -> str:
    return (f'<section class="result invalid" id="result" data-result="not_valid"><strong>未通过 Not verified'
            f"</strong><p>{escape(message)}</p></section>")


REPORT_VERDICTS = {"valid": "有效 Valid", "expired": "报告已过期 Report expired",
                   "closed": "报告已由持证人关闭 Report closed by the holder",
                   "revoked": "证书已撤销 Certificate revoked",
                   "superseded": "证书已被新证书取代 Certificate superseded",
                   "corrected": "考籍成绩已更正 Exam record corrected since"}
REPORT_PAGE_HEAD = PAGE.split("<h1>")[0].replace("{{", "{").replace("}}", "}")  # PAGE is a format string


def render_report(answer: dict | None, refusal: str | None = None) -> str:
    """The page a report's QR code opens: today's answer, authoritative, readable on a phone, no script."""
    if answer is None:
        body = render_refusal(refusal or "No report has this code.")
    elif not (answer.get("certificate") or answer.get("education_record")):
        # closed by the holder or expired: the state and when, nothing about the holder
        state = answer["state"]
        when = (answer.get("closed_at") or "")[:10] if state == "closed" else answer["expires_at"][:10]
        label = "关闭于 Closed on" if state == "closed" else "过期于 Expired on"
        body = (f'<section class="result invalid" id="result" data-result="{escape(state)}">'
                f"<strong>{escape(REPORT_VERDICTS.get(state, state))}</strong><p>{escape(answer['message'])}</p>"
                f"<dl><dt>{label}</dt><dd>{escape(when)}</dd></dl></section>")
    else:
        rows = [("报告编号 Report code", answer["report_code"]), *_subject_rows(answer),
                ("有效期至 Report valid until", answer["expires_at"][:10])]
        details = "".join(f"<dt>{escape(label)}</dt><dd>{escape(str(value))}</dd>" for label, value in rows)
        state = answer["state"]
        css = "valid" if state == "valid" else "invalid"
        body = (f'<section class="result {css}" id="result" data-result="{escape(state)}">'
                f"<strong>{escape(REPORT_VERDICTS.get(state, state))}</strong><p>{escape(answer['message'])}</p>"
                f"<dl>{details}</dl></section>")
    return (REPORT_PAGE_HEAD.replace("<title>证书查询 · Certificate check · Credence</title>",
                                     "<title>验证报告 · Verification report · Credence</title>")
            + ("<h1>考籍在线验证报告 <small>Exam record verification report</small></h1>"
               if answer and answer.get("kind") == "education_record"
               else "<h1>证书在线验证报告 <small>Verification report</small></h1>")
            + "<p><small>本页为权威结果，显示当前状态。This page is the authoritative answer and shows the "
              "status today.</small></p>" + body + "</main></body></html>\n")


def _subject_rows(answer: dict) -> list[tuple[str, str]]:
    if answer.get("kind") == "education_record":
        record = answer["education_record"]
        rows = [("姓名 Holder", record["holder_name_masked"]), ("身份证号 ID number", record["resident_id_number_masked"])]
        for program in record["programs"]:
            standing = ("毕业 Graduated" if program.get("graduated") else "合格 Passed" if program.get("outcome")
                        else "在读 In progress")
            courses = "; ".join(f"{c['course_name']} " + (f"{c['score']} ({c['sitting']})" if c["state"] == "passed"
                                                            else "免考 exempted") for c in program["courses"])
            rows.append((f"专业 Program {program['program_code']}",
                         f"{program['program_name']} · {standing}" + (f" — {courses}" if courses else "")))
        return rows
    certificate = answer["certificate"]
    return [("证书编码 Certificate number", certificate["certificate_number"]),
            ("获证人 Holder", certificate["holder_name_masked"]),
            ("身份证号 ID number", certificate["resident_id_number_masked"]),
            ("项目 Program", certificate["program_name"]), ("发证日期 Issued on", certificate["issued_on"])]
