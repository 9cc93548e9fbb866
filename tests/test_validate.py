"""The translation checks: each named reason is raised by the check that owns it, and real
translations pass."""
import copy

import pytest

from linguamix.tasks.api_call import parse_exact, render_call
from linguamix.translate import validate as V

SRC = {"turns": [
    {"role": "User", "text": "Yes, my username is user1 and my password is user1pass."},
    {"role": "AI", "text": "Great. Let me authenticate you."},
    {"role": "API", "api_name": "GetUserToken", "param_dict": {"username": "user1", "password": "user1pass"}},
    {"role": "AI", "text": "What's the content of the reminder and who attends the meeting?"},
    {"role": "API", "api_name": "AddMeeting", "param_dict": {
        "token": "n9m8k7j6h5g4f3d2s1a0", "meeting_topic": "Call mom", "start_time": "2022-05-10 10:00:00",
        "attendees": "['John Smith', 'Jane Doe']"}},
    {"role": "AI", "text": "Your meeting is all set."},
]}
ES = {"turns": [
    {"role": "User", "text": "Sí, mi nombre de usuario es user1 y mi contraseña es user1pass."},
    {"role": "AI", "text": "Perfecto. Déjame autenticarte."},
    {"role": "API", "api_name": "GetUserToken", "param_dict": {"username": "user1", "password": "user1pass"}},
    {"role": "AI", "text": "¿Cuál es el contenido del recordatorio y quién asiste a la reunión?"},
    {"role": "API", "api_name": "AddMeeting", "param_dict": {
        "token": "n9m8k7j6h5g4f3d2s1a0", "meeting_topic": "Llamar a mamá", "start_time": "2022-05-10 10:00:00",
        "attendees": "['John Smith', 'Jane Doe']"}},
    {"role": "AI", "text": "Tu reunión está lista."},
]}


def mutated(fn):
    out = copy.deepcopy(ES)
    fn(out)
    return out


def reason(out, lang="es", src=SRC, kind="turns", **kw):
    v = V.validate(src, out, lang=lang, kind=kind, settings=V.Settings(**kw))
    return v if v is True else v[1]


def test_a_correct_translation_passes_every_check():
    assert V.validate(SRC, ES, lang="es", kind="turns") is True


@pytest.mark.parametrize("mutate, expected", [
    (lambda o: o["turns"].pop(2), "api_call_count"),
    (lambda o: o["turns"].pop(1), "shape_mismatch"),
    (lambda o: o["turns"][1].update(role="User"), "shape_mismatch"),
    (lambda o: o["turns"][0].update(extra="x"), "shape_mismatch"),
    (lambda o: o.update(note="x"), "shape_mismatch"),
    (lambda o: o["turns"][2].update(api_name="ObtenerTokenDeUsuario"), "api_name_changed"),
    (lambda o: o["turns"][2].update(param_dict={"nombre_de_usuario": "user1", "password": "user1pass"}),
     "param_key_changed"),
    (lambda o: o["turns"][2]["param_dict"].update(username=1), "unparseable_argument"),
    (lambda o: o["turns"][4]["param_dict"].update(attendees="John Smith y Jane Doe"), "unparseable_argument"),
    (lambda o: o["turns"][4]["param_dict"].update(attendees="['John Smith']"), "value_not_preserved"),
    (lambda o: o["turns"][4]["param_dict"].update(start_time="10/05/2022 10:00"), "value_not_preserved"),
    (lambda o: o["turns"][4]["param_dict"].update(token="n9m8k7j6h5g4f3d2s1a"), "value_not_preserved"),
    (lambda o: o["turns"][0].update(text="Sí, mi nombre de usuario es usuario1 y mi contraseña es user1pass."),
     "value_not_preserved"),
    (lambda o: o["turns"][3].update(text=SRC["turns"][3]["text"]), "untranslated"),
])
def test_each_failure_has_its_named_reason(mutate, expected):
    assert reason(mutated(mutate)) == expected


def test_a_wholly_english_answer_is_untranslated_even_when_paraphrased():
    assert reason(copy.deepcopy(SRC)) == "untranslated"
    paraphrased = mutated(lambda o: [o["turns"][i].update(text=t) for i, t in (
        (0, "Yes, user1 is my user name, and the password I use is user1pass."),
        (1, "Perfect, I am going to authenticate you now."),
        (3, "Tell me what the reminder should say and who is going to attend the meeting."),
        (5, "The meeting has been scheduled for you."))])
    assert reason(paraphrased) == "untranslated"  # language identification: confidently English


def test_script_and_language_checks():
    # Spanish text where Japanese was asked for: the script check catches it
    assert reason(ES, lang="ja") == "wrong_script"
    # French where Spanish was asked for: same script, the language check catches it
    fr = mutated(lambda o: [o["turns"][i].update(text=t) for i, t in (
        (0, "Oui, mon nom d'utilisateur est user1 et mon mot de passe est user1pass."),
        (1, "Parfait. Laissez-moi vous authentifier."),
        (3, "Quel est le contenu du rappel et qui participe à la réunion ?"),
        (5, "Votre réunion est prête."))])
    assert reason(fr, lang="es") == "wrong_language"
    assert reason(fr, lang="fr") is True
    # an unsure identification is not a rejection: raise the bar and French passes as "Spanish"
    assert reason(fr, lang="es", lid_confident=1.0) is True


def test_language_checks_ignore_identifiers_kept_in_english():
    ja = {"turns": [{"role": "User", "text": "はい、ユーザー名は user1 で、パスワードは user1pass です。"}]}
    src = {"turns": [{"role": "User", "text": "Yes, my username is user1 and my password is user1pass."}]}
    assert V.language_text(ja) == "はい、ユーザー名は で、パスワードは です。"
    assert V.script_share(V.language_text(ja), "ja") == 1.0
    assert reason(ja, lang="ja", src=src) is True


def test_parse_response_accepts_fences_and_reasoning_but_names_garbage():
    good = '{"turns": []}'
    assert V.parse_response(good) == {"turns": []}
    assert V.parse_response(f"```json\n{good}\n```") == {"turns": []}
    assert V.parse_response(f"<think>some {{ thoughts</think>\nHere it is: {good}") == {"turns": []}
    for bad in (None, "", "Sorry, I cannot help.", '{"turns": [', "[1, 2]", '{"a": 1} trailing }'):
        out = V.parse_response(bad)
        assert out[:2] == (False, "invalid_json"), bad
    # a parse failure passes straight through validate
    assert reason(V.parse_response("nope")) == "invalid_json"


def test_the_call_grammar_reads_api_bank_calls_and_keeps_their_quoting():
    """The translator reads calls with the scorer's parser (tasks.api_call): one grammar, byte-exact round trips."""
    call = parse_exact("[GetToday()]")
    assert (call.api_name, call.arguments) == ("GetToday", {})
    call = parse_exact("[AddMeeting(attendees='['John', 'Jane']', topic='l'agenda')]")
    assert (call.api_name, call.arguments) == ("AddMeeting", {"attendees": "['John', 'Jane']", "topic": "l'agenda"})
    call = parse_exact("[Trip(origin=New York, to=\"Paris\", n='2')]")
    assert call.arguments == {"origin": "New York", "to": "Paris", "n": "2"}
    assert call.quotes == {"origin": "", "to": '"', "n": "'"}
    assert render_call(call.api_name, call.arguments, call.quotes) == "[Trip(origin=New York, to=\"Paris\", n='2')]"
    for bad in ("[A(1)]", "[A(x='1', x='2')]", "A(x='1')", "[A(x='1', 2)]", "API-Request: [GetToday()]"):
        assert parse_exact(bad) is None, bad


@pytest.mark.parametrize("key, value, keep", [
    ("token", "n9m8k7j6h5g4f3d2s1a0", True), ("password", "password", True), ("username", "admin", True),
    ("time", "2023-03-20 06:30:00", True), ("formula", "(5+6)*3", True), ("stock_code", "NFLX", True),
    ("receiver", "john@example.com", True), ("on", "True", True), ("account", "johnsmith", True),
    ("url", "https://example.com/a.wav", True), ("adult_count", "2", True), ("location", "Hilton", False),
    ("content", "Call mom", False), ("meeting_topic", "New Employee Orientation", False),
    ("keywords", "record health data", False), ("patient_name", "John Smith", False),
])
def test_must_preserve_separates_identifiers_from_free_text(key, value, keep):
    assert V.must_preserve(key, value) is keep


def test_generic_fields_checks():
    src = {"question": "Janet has 16 eggs and eats 3. She sells the rest for $2 each. How much does she make?"}
    es = {"question": "Janet tiene 16 huevos y se come 3. Vende el resto a 2 $ cada uno. ¿Cuánto gana?"}
    assert reason(es, src=src, kind="fields", preserve_numbers=True) is True
    changed = {"question": es["question"].replace("16", "dieciséis")}
    assert reason(changed, src=src, kind="fields", preserve_numbers=True) == "value_not_preserved"
    assert reason(changed, src=src, kind="fields") is True  # digits are only checked when asked for
    assert reason({"question": 3}, src=src, kind="fields") == "shape_mismatch"
    assert reason({"q": es["question"]}, src=src, kind="fields") == "shape_mismatch"
    assert V.digit_runs("জ্যানেটের ১৬টি ডিম, 3") == V.digit_runs("16 eggs, 3")
