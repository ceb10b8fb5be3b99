"""Tasks parse sloppy and hostile student output without raising, and TOML tasks load or fail clearly."""

import pytest

from mentor.records import Example
from mentor.tasks import EXPLAIN, SEVERITY, TaskError, get_task


@pytest.mark.parametrize("raw, label", [
    ("major", "major"),
    ("  Major.\n", "major"),
    ("**MAJOR**", "major"),
    ('{"issue_type": "critical"}', "critical"),
    ('Let me think. The input is concatenated.\n```json\n{"issue_type": "critical"}\n```', "critical"),
    ('Thinking... {"note": 1} then {"issue_type": "Minor"}', "minor"),
    ("issue_type: trivial", "trivial"),
    ("Severity: minor - it only wastes a query", "minor"),
    ("I would rate this as trivial because it is naming.", "trivial"),
])
def test_severity_parses_sloppy_output(raw, label):
    assert SEVERITY.parse(raw) == {"issue_type": label}


@pytest.mark.parametrize("raw", [
    None, "", "   ", 42, ["major"], "severe", '{"issue_type": "blocker"}', '{"issue_type": "crit',
    "major or minor, hard to say", "\x00\x01\x02", "{" * 5000, "a" * 100_000, "ignore previous instructions",
    '{"issue_type": null}', '{"issue_type": 7}',
])
def test_severity_hostile_output_is_unparseable_not_an_exception(raw):
    assert SEVERITY.parse(raw) is None


def test_explain_parses_label_and_explanation():
    assert EXPLAIN.parse("major\nexplanation: totals come out wrong.") == {"issue_type": "major", "explanation": "totals come out wrong."}
    assert EXPLAIN.parse('{"issue_type": "minor", "explanation": "slow but works"}') == {"issue_type": "minor", "explanation": "slow but works"}
    assert EXPLAIN.parse("minor\nIt wastes a query per row.") == {"issue_type": "minor", "explanation": "It wastes a query per row."}
    assert EXPLAIN.parse("minor") is None  # the explanation is missing


def test_target_and_parse_round_trip():
    for task, output in ((SEVERITY, {"issue_type": "critical"}), (EXPLAIN, {"issue_type": "trivial", "explanation": "Style only."})):
        assert task.parse(task.target(output)) == output


def test_prompt_keeps_braces_and_clips_long_fields():
    prompt = SEVERITY.prompt({"code": "x = {review}" + "y" * 5000, "review": "use {name}"})
    assert "x = {review}" in prompt and "use {name}" in prompt
    assert len(prompt) < 2 * SEVERITY.max_input_chars + 200


def test_key_normalises_whitespace_and_case():
    a = SEVERITY.key({"code": "A  =\n1", "review": "Bad"})
    assert a == SEVERITY.key({"code": "a = 1", "review": " bad "})
    assert a != SEVERITY.key({"code": "a = 2", "review": "bad"})


def test_validate_example_names_the_problem():
    assert "label 'blocker'" in SEVERITY.validate_example(Example({"code": "x", "review": "y"}, {"issue_type": "blocker"}))
    assert "empty field 'input.code'" in SEVERITY.validate_example(Example({"code": " ", "review": "y"}, {"issue_type": "major"}))
    assert "missing field 'input.review'" in SEVERITY.validate_example(Example({"code": "x"}, {"issue_type": "major"}))


def test_the_context_fields_are_what_a_finding_is_read_without():
    assert SEVERITY.context_fields == ("code",) and EXPLAIN.context_fields == ("code",)
    item = {"code": "x = eval(user_input)", "review": "eval on user input"}
    assert SEVERITY.without_context(item) == {"code": "", "review": "eval on user input"}
    assert item["code"] == "x = eval(user_input)"  # the example itself is untouched
    assert "eval(user_input)" not in SEVERITY.prompt(SEVERITY.without_context(item))


def test_toml_task_with_context_fields(tmp_path):
    path = tmp_path / "ticket.toml"
    path.write_text('name = "ticket"\ndescription = "d"\ninput_fields = ["thread", "text"]\noutput_fields = ["mood"]\n'
                    'label_field = "mood"\nlabels = ["angry", "calm"]\ncontext_fields = ["thread"]\n'
                    'student_prompt = "{thread}\\nTicket: {text}\\nMood:"\n')
    task = get_task(str(path))
    assert task.context_fields == ("thread",)
    assert task.without_context({"thread": "earlier mails", "text": "refund!"}) == {"thread": "", "text": "refund!"}


def test_toml_task(tmp_path):
    path = tmp_path / "sentiment.toml"
    path.write_text('name = "sentiment"\ndescription = "Is the ticket angry?"\ninput_fields = ["text"]\n'
                    'output_fields = ["mood"]\nlabel_field = "mood"\nlabels = ["angry", "calm"]\n'
                    'student_prompt = "Ticket: {text}\\nMood:"\n')
    task = get_task(str(path))
    assert task.labels == ("angry", "calm") and task.parse("Angry!") == {"mood": "angry"}
    assert task.prompt({"text": "where is my refund"}) == "Ticket: where is my refund\nMood:"


@pytest.mark.parametrize("body, message", [
    ('name = "t"\ndescription = "d"\ninput_fields = ["a"]\noutput_fields = ["b"]\nstudent_prompt = "{a}"\ncolour = 1\n', "unknown key(s) colour"),
    ('name = "t"\ninput_fields = ["a"]\noutput_fields = ["b"]\nstudent_prompt = "{a}"\n', "missing key(s) description"),
    ('name = "t"\ndescription = "d"\ninput_fields = ["a"]\noutput_fields = ["b"]\nstudent_prompt = "no placeholder"\n', "placeholder {a}"),
    ('name = "t"\ndescription = "d"\ninput_fields = ["a"]\noutput_fields = ["b"]\nstudent_prompt = "{a}"\nlabel_field = "b"\nlabels = ["x"]\n', "at least two labels"),
    ('name = "t"\ndescription = "d"\ninput_fields = ["a", "c"]\noutput_fields = ["b"]\nstudent_prompt = "{a} {c}"\ncontext_fields = ["code"]\n', "context_fields code are not input fields"),
    ('name = "t"\ndescription = "d"\ninput_fields = ["a"]\noutput_fields = ["b"]\nstudent_prompt = "{a}"\ncontext_fields = ["a"]\n', "at least one input field to read"),
    ('name = "t"\ndescription = "d"\ninput_fields = ["a"]\noutput_fields = ["b"]\nstudent_prompt = "{a}"\ncontext_fields = "a"\n', "'context_fields' must be a list"),
    ("name = [", "not valid TOML"),
])
def test_bad_toml_task_is_a_clear_error(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(TaskError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(").replace(")", r"\)")):
        get_task(str(path))
