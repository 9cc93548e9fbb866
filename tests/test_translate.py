"""`linguamix translate` against a scripted OpenAI-compatible server on 127.0.0.1 (in the test process).

The server answers per (target language, example) from a script: a correct translation, a translated
parameter key, a renamed API, broken JSON, an English answer, a 429 with Retry-After, a 500, or a hang
(to kill a run midway). Translations of real API-Bank files were written by hand.
"""
import copy
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from linguamix.cli import main
from linguamix import translate as T
from linguamix.translate import engine as tengine
from linguamix.translate import prompt
from linguamix.translate import units as tunits
from linguamix.errors import ConfigError, LinguamixError

KEY = "sk-lmx-SECRET-7f3a9c41"
KEY_ENV = "LMX_TEST_TRANSLATE_KEY"
DIALOGUES = ["AddReminder-level-1-1", "Calculator-level-1-1", "GetToday-level-1-3", "QueryStock-level-1-1"]
TRAIN_ROWS = [0, 5]  # rows of training-data/lv3-api-train.json


# -- hand-written translations of the real files ---------------------------------------------------------
def _dialogue(texts: dict[int, str], params: dict[int, dict] | None = None):
    """A translation = the source view with these turn texts / argument values replaced."""
    def make(view):
        out = copy.deepcopy(view)
        for i, t in texts.items():
            assert "text" in out["turns"][i]
            out["turns"][i]["text"] = t
        for i, p in (params or {}).items():
            out["turns"][i]["param_dict"].update(p)
        return out
    return make


TRANSLATIONS = {
    ("es", "Calculator-level-1-1"): _dialogue({0: "¿Puedes calcular (5+6)*3 por mí?", 1: "Claro, déjame encargarme de eso.",
                                              3: "El resultado es 33."}),
    ("es", "GetToday-level-1-3"): _dialogue({0: "¿Puedes decirme la fecha de hoy?", 1: "Claro, puedo hacerlo.",
                                            3: "Hoy es 2023-03-31."}),
    ("es", "QueryStock-level-1-1"): _dialogue({
        0: "¿Cuál es el precio de la acción de SQ el 14 de marzo de 2022?", 1: "Déjame comprobarlo.",
        3: "El precio de la acción de SQ el 14 de marzo de 2022 es 248.9."}),
    ("es", "AddReminder-level-1-1"): _dialogue({
        0: "¿Puedes ponerme un recordatorio para llamar a mi mamá mañana a las 10 de la mañana?",
        1: "Claro, puedo ayudarte con eso. ¿Tienes una cuenta con nosotros?",
        2: "Sí, mi nombre de usuario es user1 y mi contraseña es user1pass.",
        3: "Perfecto. Déjame autenticarte.", 5: "Listo. ¿Cuál es el contenido del recordatorio?",
        6: "\"Llamar a mamá\"", 7: "¿Y a qué hora quieres que te lo recuerde?", 8: "\"2022-05-10 a las 10 AM\"",
        9: "De acuerdo.", 11: "Tu recordatorio está listo."}, {10: {"content": "Llamar a mamá"}}),
    ("es", "lv3-api-train#0"): _dialogue({0: "Busca un cardiólogo en Los Ángeles para una cita de revisión."},
                                         {1: {"keywords": "verificador de disponibilidad de citas médicas"}}),
    ("es", "lv3-api-train#5"): _dialogue({0: "Reserva un retiro de bienestar para dos personas en Bali, Indonesia."},
                                         {1: {"keywords": "retiros de bienestar en Bali"}}),
    ("ja", "Calculator-level-1-1"): _dialogue({0: "(5+6)*3 を計算してもらえますか？", 1: "はい、お任せください。", 3: "結果は33です。"}),
    ("ja", "GetToday-level-1-3"): _dialogue({0: "今日の日付を教えてもらえますか？", 1: "はい、できます。", 3: "今日は2023-03-31です。"}),
    ("bn", "Calculator-level-1-1"): _dialogue({0: "আপনি কি আমার জন্য (5+6)*3 হিসাব করে দিতে পারবেন?",
                                              1: "অবশ্যই, আমি এটা করে দিচ্ছি।", 3: "ফলাফল হল 33।"}),
    ("bn", "GetToday-level-1-3"): _dialogue({0: "আপনি কি আমাকে আজকের তারিখটা বলতে পারবেন?", 1: "হ্যাঁ, আমি পারব।",
                                            3: "আজকের তারিখ 2023-03-31।"}),
}


# -- the scripted server -----------------------------------------------------------------------------------
def ok(view):
    return {"status": 200, "content": json.dumps(view, ensure_ascii=False)}


def raw(text):
    return {"status": 200, "content": text}


def http(status, headers=None):
    return {"status": status, "headers": headers or {}, "body": json.dumps({"error": {"message": "scripted"}})}


class FakeLLM:
    """/v1/chat/completions on 127.0.0.1:<free port>. `script[(lang, name)]` is a list of actions, one per
    request for that example (the last one repeats); unscripted examples get their correct translation."""

    def __init__(self, names: dict[str, tuple[str, dict]]):
        self.names = names  # the example text exactly as sent -> (name, source view)
        self.script: dict[tuple[str, str], list] = {}
        self.requests: list[dict] = []
        self.hang = threading.Event()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    fake.respond(self, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client was killed while we waited

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, handler, body):
        lang = re.search(r"\((\w+)\)", body["messages"][0]["content"]).group(1)
        example = body["messages"][1]["content"].split("\n\n", 1)[1]
        name, view = self.names[example]
        with self.lock:
            n = sum(1 for r in self.requests if r["key"] == (lang, name))
            self.requests.append({"key": (lang, name), "auth": handler.headers.get("Authorization"), "body": body,
                                  "path": handler.path})
            actions = self.script.get((lang, name)) or [ok(TRANSLATIONS[(lang, name)](view))]
            action = actions[min(n, len(actions) - 1)]
        if action.get("hang"):
            self.hang.wait(60)
            return
        if action["status"] != 200:
            payload = action["body"].encode()
        else:
            content = action["content"]
            payload = json.dumps({"id": "cmpl-1", "object": "chat.completion", "model": "fake-model-rev1",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": content}}],
                                  "usage": {"prompt_tokens": 100, "completion_tokens": len(content) // 4}}).encode()
        handler.send_response(action["status"])
        for k, v in action.get("headers", {}).items():
            handler.send_header(k, v)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def keys(self):
        return [r["key"] for r in self.requests]

    def close(self):
        self.hang.set()
        self.server.shutdown()
        self.server.server_close()


# -- fixtures -------------------------------------------------------------------------------------------------
@pytest.fixture
def bank(shared_data, tmp_path) -> Path:
    """A small API-Bank folder made of real files: 4 dialogues, 2 training rows, apis.json, test-data."""
    src, dst = shared_data / "api-bank", tmp_path / "api-bank"
    (dst / "level-1-given-desc").mkdir(parents=True)
    for name in DIALOGUES:
        shutil.copy(src / "level-1-given-desc" / f"{name}.jsonl", dst / "level-1-given-desc")
    rows = json.loads((src / "training-data" / "lv3-api-train.json").read_text("utf-8"))
    (dst / "training-data").mkdir()
    (dst / "training-data" / "lv3-api-train.json").write_text(json.dumps([rows[i] for i in TRAIN_ROWS], indent=2))
    shutil.copy(src / "apis.json", dst / "apis.json")
    (dst / "test-data").mkdir()
    shutil.copy(src / "test-data" / "level-1-api.json", dst / "test-data")
    return dst


@pytest.fixture
def llm(bank):
    units = [u for sf in tunits.load_api_bank_sources(bank, list(tunits.DEFAULT_INCLUDE), None) for u in sf.units]
    names = {}
    for u in units:
        name = Path(u.file).stem if u.index is None else f"{Path(u.file).stem}#{TRAIN_ROWS[u.index]}"
        names[u.dumps()] = (name, u.view)
    fake = FakeLLM(names)
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def write_config(path: Path, url: str, **over) -> Path:
    doc = {"engine": {"base_url": url, "model": "fake-model", "api_key_env": KEY_ENV, "max_concurrency": 1,
                      "max_retries": 2, "backoff_base_s": 0.0, "timeout_s": 20, "trust_env": False},
           "validation": {"max_attempts": 2}}
    for section, values in over.items():
        doc.setdefault(section, {}).update(values) if isinstance(values, dict) else doc.update({section: values})
    path.write_text(yaml.safe_dump(doc))
    return path


def run(cfg_path, bank, out, langs=("es",), sleeps=None, **kw):
    cfg = T.load_translate_config(cfg_path)
    engine = T.Engine.from_config(cfg.engine, sleep=_recorder(sleeps)) if sleeps is not None else None
    return T.translate(cfg, source="api-bank", langs=list(langs), out_dir=out, source_dir=bank, progress=False,
                       engine=engine, **kw)


def _recorder(sleeps):
    async def sleep(seconds):
        sleeps.append(seconds)
    return sleep


def read_dialogue(path: Path):
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def skeleton(turns):
    return [(t["role"], t.get("api_name"), tuple(t.get("param_dict", {}))) for t in turns]


# -- tests ----------------------------------------------------------------------------------------------------
def test_each_scripted_answer_is_handled_as_specified(bank, llm, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    views = {name: view for name, view in llm.names.values()}
    key_translated = copy.deepcopy(TRANSLATIONS[("es", "QueryStock-level-1-1")](views["QueryStock-level-1-1"]))
    key_translated["turns"][2]["param_dict"] = {"código_bursátil": "SQ", "date": "2022-03-14"}
    renamed = TRANSLATIONS[("es", "GetToday-level-1-3")](views["GetToday-level-1-3"])
    renamed["turns"][2]["api_name"] = "ObtenerHoy"
    llm.script = {
        ("es", "QueryStock-level-1-1"): [ok(key_translated), ok(TRANSLATIONS[("es", "QueryStock-level-1-1")](
            views["QueryStock-level-1-1"]))],
        ("es", "GetToday-level-1-3"): [ok(renamed)],
        ("es", "AddReminder-level-1-1"): [http(429, {"Retry-After": "3"}),
                                          ok(TRANSLATIONS[("es", "AddReminder-level-1-1")](views["AddReminder-level-1-1"]))],
        ("es", "lv3-api-train#0"): [raw('{"turns": [{"role": "User", "text": "Busca un cardiólogo"')],
        ("es", "lv3-api-train#5"): [http(500), ok(TRANSLATIONS[("es", "lv3-api-train#5")](views["lv3-api-train#5"]))],
        ("es", "Calculator-level-1-1"): [ok(views["Calculator-level-1-1"])],  # answered in English
    }
    out, sleeps = tmp_path / "out", []
    manifest = run(write_config(tmp_path / "t.yaml", llm.url), bank, out, sleeps=sleeps)

    es = manifest["languages"]["es"]
    assert (es["units"], es["translated"], es["rejected"], es["engine_errors"]) == (6, 3, 3, 0)
    assert es["rejects_by_reason"] == {"api_name_changed": 1, "invalid_json": 1, "untranslated": 1}
    assert es["reject_rate"] == 0.5 and es["accepted_after_retry"] == 1
    assert manifest["this_run"]["http_retries"] == {"HTTP 429": 1, "HTTP 500": 1}
    assert manifest["complete"] is True and manifest["engine"]["base_url_host"].startswith("127.0.0.1:")
    assert manifest["engine"]["served_models"] == ["fake-model-rev1"]
    assert manifest["prompt"] == {"version": "mapicall-v1", "sha256": prompt.MAPICALL_V1.sha256}
    assert 3.0 in sleeps  # Retry-After was honoured (the backoff sleeps are 0 here)
    # requests: rejected examples were retried K=2 times, HTTP errors once more, the rest once
    assert Counter(llm.keys()) == {("es", "QueryStock-level-1-1"): 2, ("es", "GetToday-level-1-3"): 2,
                                   ("es", "AddReminder-level-1-1"): 2, ("es", "lv3-api-train#0"): 2,
                                   ("es", "lv3-api-train#5"): 2, ("es", "Calculator-level-1-1"): 2}
    # the retry carried the validation error back to the model, after the rejected answer
    retry = [r["body"]["messages"] for r in llm.requests if r["key"] == ("es", "QueryStock-level-1-1")][1]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert "param_key_changed" in retry[-1]["content"] and "código_bursátil" in retry[2]["content"]
    body = llm.requests[0]["body"]
    assert body["temperature"] == 0.0 and body["model"] == "fake-model" and llm.requests[0]["path"] == "/v1/chat/completions"

    rejects = [json.loads(line) for line in (out / "es" / "rejects.jsonl").read_text("utf-8").splitlines()]
    assert {(r["source_file"], r["index"], r["reason"], r["attempts"]) for r in rejects} == {
        ("level-1-given-desc/GetToday-level-1-3.jsonl", None, "api_name_changed", 2),
        ("level-1-given-desc/Calculator-level-1-1.jsonl", None, "untranslated", 2),
        ("training-data/lv3-api-train.json", 0, "invalid_json", 2)}
    assert next(r for r in rejects if r["reason"] == "api_name_changed")["turn"] == 2

    # dialogues: the accepted ones, same turns/roles/API names/keys, results kept, result.input follows
    written = sorted(p.name for p in (out / "es" / "level-1-given-desc").iterdir())
    assert written == ["AddReminder-level-1-1.jsonl", "QueryStock-level-1-1.jsonl"]
    for name in written:
        src, tr = read_dialogue(bank / "level-1-given-desc" / name), read_dialogue(out / "es" / "level-1-given-desc" / name)
        assert skeleton(src) == skeleton(tr)
        assert [t.get("result", {}).get("output") for t in src] == [t.get("result", {}).get("output") for t in tr]
    reminder = read_dialogue(out / "es" / "level-1-given-desc" / "AddReminder-level-1-1.jsonl")
    assert reminder[10]["param_dict"]["content"] == reminder[10]["result"]["input"]["content"] == "Llamar a mamá"
    assert reminder[10]["param_dict"]["token"] == "n9m8k7j6h5g4f3d2s1a0" and reminder[0]["text"].startswith("¿Puedes")

    # training rows: rejected row left out, the other keeps the English row's id, instruction untouched
    from linguamix.tasks.api_call import parse_api_call

    rows = json.loads((out / "es" / "training-data" / "lv3-api-train.json").read_text("utf-8"))
    source_rows = json.loads((bank / "training-data" / "lv3-api-train.json").read_text("utf-8"))
    assert [r["id"] for r in rows] == ["lv3-api-train#1"]
    assert rows[0]["instruction"] == source_rows[1]["instruction"]
    assert rows[0]["input"].split("\n")[0] == source_rows[1]["input"].split("\n")[0]  # API description kept
    assert "User: Reserva un retiro de bienestar para dos personas en Bali, Indonesia.TIME: 2035-07-15 10:00:00" in rows[0]["input"]
    assert "API-Request: [ToolSearcher(keywords='retiros de bienestar en Bali')]->{'name': 'WellnessRetreatsInBali'" in rows[0]["input"]
    call = parse_api_call(rows[0]["output"])
    assert (call.api_name, dict(call.arguments)) == ("WellnessRetreatsInBali", {"location": "Bali"})

    # English copied unchanged, with the descriptions the loader reads
    for rel in ["level-1-given-desc/Calculator-level-1-1.jsonl", "training-data/lv3-api-train.json", "apis.json",
                "test-data/level-1-api.json"]:
        assert (out / "en" / rel).read_bytes() == (bank / rel).read_bytes()

    # the API key was sent, and is nowhere on disk or in the captured output
    assert {r["auth"] for r in llm.requests} == {f"Bearer {KEY}"}
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len([p for p in files if ".cache" in p.parts]) == 6
    assert not [p for p in files if KEY.encode() in p.read_bytes()]
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err + caplog.text


def test_output_plugs_into_the_mapicall_bank_loader(bank, llm, tmp_path):
    from linguamix.data import loaders, pools

    out = tmp_path / "out"
    with pytest.raises(LinguamixError, match="failed on engine errors"):  # make one dialogue fail for good
        llm.script = {("es", "GetToday-level-1-3"): [http(503)]}
        run(write_config(tmp_path / "t.yaml", llm.url), bank, out)
    llm.script = {}
    run(write_config(tmp_path / "t.yaml", llm.url), bank, out)
    test = loaders.BUILTIN["mapicall-bank"](out, ["en", "es"], {"split": "test", "levels": ["level-1-given-desc"]})
    by_lang, dropped = pools.check_parallel(test, source=str(out))
    assert dropped == [] and len(by_lang["es"]) == len(by_lang["en"]) == 5
    item_en, item_es = by_lang["en"]["AddReminder-level-1-1.jsonl#2"], by_lang["es"]["AddReminder-level-1-1.jsonl#2"]
    assert item_es.instruction == item_en.instruction and item_es.api_name == "AddReminder"
    assert item_es.arguments["content"] == "Llamar a mamá" and "mi contraseña es user1pass" in item_es.dialogue
    train = loaders.BUILTIN["mapicall-bank"](out, ["en", "es"], {"split": "train"})
    by_lang, dropped = pools.check_parallel(train, source=str(out))
    # row #0's gold call is ToolSearcher: not part of the level-1 task, dropped in both languages
    assert list(by_lang["es"]) == ["lv3-api-train#1"]
    assert "Reserva un retiro" in by_lang["es"]["lv3-api-train#1"].dialogue
    assert [s["dropped"] for s in train.sources] == [{"gold call is ToolSearcher (retrieval, not the level-1 "
                                                      "task)": 1}] * 2


def test_engine_errors_are_not_cached_and_a_rerun_pays_only_for_them(bank, llm, tmp_path):
    cfg = write_config(tmp_path / "t.yaml", llm.url)
    out = tmp_path / "out"
    llm.script = {("es", "Calculator-level-1-1"): [http(500)]}
    with pytest.raises(LinguamixError, match="1 example.*engine errors.*HTTP 500.*rerun"):
        run(cfg, bank, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["languages"]["es"]["engine_errors"] == 1
    assert manifest["languages"]["es"]["translated"] == 5
    assert Counter(llm.keys())[("es", "Calculator-level-1-1")] == 3  # 1 try + max_retries 2
    assert not (out / "es" / "level-1-given-desc" / "Calculator-level-1-1.jsonl").exists()
    first = len(llm.requests)

    llm.script = {}
    manifest = run(cfg, bank, out)
    assert llm.keys()[first:] == [("es", "Calculator-level-1-1")]
    assert manifest["complete"] is True and manifest["languages"]["es"]["translated"] == 6
    assert manifest["languages"]["es"]["cached_before_this_run"] == 5
    # a third run is free: everything comes from the cache, no key needed either
    os.environ.pop(KEY_ENV)
    run(cfg, bank, out)
    assert len(llm.requests) == first + 1


def _as_from_a_shell() -> None:
    """In the child: Ctrl-C as a terminal delivers it. A child inherits an ignored SIGINT (and a blocked
    one), and a non-interactive shell starts background jobs with SIGINT ignored: pytest run as
    `cmd &` (as CI scripts may) saw SIG_IGN here and the child never received the signal."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_run_killed_midway_resumes_without_repeating_cached_requests(bank, llm, tmp_path):
    cfg = write_config(tmp_path / "t.yaml", llm.url)
    out = tmp_path / "out"
    order = ["AddReminder-level-1-1", "Calculator-level-1-1", "GetToday-level-1-3"]  # the job order (sorted files)
    views = {name: view for name, view in llm.names.values()}
    llm.script = {("es", order[2]): [{"hang": True}]}
    env = {**os.environ, KEY_ENV: KEY}
    proc = subprocess.Popen([sys.executable, "-m", "linguamix", "translate", str(cfg), "--langs", "es", "--out",
                             str(out), "--source-dir", str(bank), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_as_from_a_shell)
    deadline = time.time() + 60
    while len(llm.requests) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert llm.keys() == [("es", n) for n in order], proc.poll()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    llm.hang.set()
    assert proc.returncode == 130, err
    assert "interrupted" in err and KEY not in err
    # the two finished examples are cached; no output was half-written
    assert len(list((out / ".cache").rglob("*.json"))) == 2
    assert not (out / "manifest.json").exists() and not (out / "es").exists()
    assert not [p for p in out.rglob("*") if p.is_file() and (p.name.endswith(".tmp") or KEY.encode() in p.read_bytes())]

    llm.script = {}
    manifest = run(cfg, bank, out)
    second = llm.keys()[3:]
    assert not set(second) & {("es", order[0]), ("es", order[1])}  # nothing cached was asked again
    assert sorted(second) == sorted(("es", n) for n in views if ("es", n) not in {("es", order[0]), ("es", order[1])})
    assert manifest["languages"]["es"]["translated"] == 6 and manifest["languages"]["es"]["cached_before_this_run"] == 2


def test_japanese_and_bengali_and_the_script_check(bank, llm, tmp_path):
    views = {name: view for name, view in llm.names.values()}
    llm.script = {("ja", "GetToday-level-1-3"): [ok(TRANSLATIONS[("es", "GetToday-level-1-3")](views["GetToday-level-1-3"]))]}
    out = tmp_path / "out"
    manifest = run(write_config(tmp_path / "t.yaml", llm.url), bank, out, langs=("en", "ja", "bn"),
                   files=["level-1-given-desc/Calculator-*", "level-1-given-desc/GetToday-*"])
    assert list(manifest["languages"]) == ["ja", "bn"]  # en is the source: copied, not translated
    assert manifest["languages"]["ja"]["rejects_by_reason"] == {"wrong_script": 1}  # Spanish sent for Japanese
    assert manifest["languages"]["bn"]["translated"] == 2
    bn = read_dialogue(out / "bn" / "level-1-given-desc" / "GetToday-level-1-3.jsonl")
    assert bn[3]["text"] == "আজকের তারিখ 2023-03-31।" and bn[2]["result"]["output"] == "2023-03-31"
    ja = read_dialogue(out / "ja" / "level-1-given-desc" / "Calculator-level-1-1.jsonl")
    assert ja[2]["param_dict"] == {"formula": "(5+6)*3"} and ja[3]["text"] == "結果は33です。"
    assert sorted(p.name for p in (out / "en" / "level-1-given-desc").iterdir()) == [
        "Calculator-level-1-1.jsonl", "GetToday-level-1-3.jsonl"]


def test_identical_examples_are_translated_once(bank, llm, tmp_path):
    rows = json.loads((bank / "training-data" / "lv3-api-train.json").read_text())
    (bank / "training-data" / "lv3-api-train.json").write_text(json.dumps(rows + [rows[1]]))
    manifest = run(write_config(tmp_path / "t.yaml", llm.url), bank, tmp_path / "out",
                   files=["training-data/*.json"])
    assert manifest["languages"]["es"]["translated"] == 3
    assert Counter(llm.keys()) == {("es", "lv3-api-train#0"): 1, ("es", "lv3-api-train#5"): 1}
    out_rows = json.loads((tmp_path / "out" / "es" / "training-data" / "lv3-api-train.json").read_text())
    assert [r["id"] for r in out_rows] == ["lv3-api-train#0", "lv3-api-train#1", "lv3-api-train#2"]
    assert out_rows[1]["input"] == out_rows[2]["input"]


@pytest.mark.parametrize("mode, field", [("vllm", "structured_outputs"), ("json_schema", "response_format"),
                                         ("json_object", "response_format")])
def test_structured_output_requests(bank, llm, tmp_path, mode, field):
    cfg = write_config(tmp_path / "t.yaml", llm.url, engine={"structured_output": mode,
                                                             "extra_body": {"top_p": 1.0}})
    run(cfg, bank, tmp_path / "out", files=["level-1-given-desc/QueryStock-*"])
    body = llm.requests[0]["body"]
    assert field in body and body["top_p"] == 1.0
    if mode != "json_object":
        schema = body["structured_outputs"]["json"] if mode == "vllm" else body[field]["json_schema"]["schema"]
        api = schema["properties"]["turns"]["prefixItems"][2]["properties"]
        assert api["api_name"] == {"enum": ["QueryStock"]}
        assert api["param_dict"]["properties"]["date"] == {"enum": ["2022-03-14"]}
        assert api["param_dict"]["required"] == ["stock_code", "date"]


def test_generic_jsonl_mode(tmp_path):
    src = tmp_path / "mgsm.jsonl"
    rows = [{"question": "Janet has 16 eggs and eats 3 of them. How many are left?", "answer": 13, "lang": "en"},
            {"question": "A robe takes 2 bolts of blue fiber and half that much white fiber. How many in total?",
             "answer": 3, "lang": "en"}]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    es = ["Janet tiene 16 huevos y se come 3 de ellos. ¿Cuántos quedan?",
          "Una túnica necesita 2 rollos de fibra azul y la mitad de fibra blanca. ¿Cuántos en total?"]
    fake = FakeLLM({json.dumps({"question": r["question"]}, ensure_ascii=False, indent=1): (str(i), None)
                    for i, r in enumerate(rows)})
    try:
        fake.script = {("es", "0"): [raw(json.dumps({"question": es[0]}))],
                       ("es", "1"): [raw(json.dumps({"question": es[1].replace("2 rollos", "dos rollos")}))]}
        cfg = T.load_translate_config(write_config(tmp_path / "t.yaml", fake.url,
                                                   validation={"preserve_numbers": True}))
        manifest = T.translate(cfg, source="jsonl", langs=["es"], out_dir=tmp_path / "out", source_dir=src,
                               fields=["question"], progress=False)
    finally:
        fake.close()
    assert fake.requests[0]["body"]["messages"][0]["content"].startswith("You translate dataset records")
    assert manifest["prompt"]["version"] == "fields-v1"
    assert manifest["languages"]["es"]["rejects_by_reason"] == {"value_not_preserved": 1}
    out = [json.loads(line) for line in (tmp_path / "out" / "es" / "mgsm.jsonl").read_text("utf-8").splitlines()]
    assert out == [{"question": es[0], "answer": 13, "lang": "es", "id": "mgsm#0"}]
    en = [json.loads(line) for line in (tmp_path / "out" / "en" / "mgsm.jsonl").read_text("utf-8").splitlines()]
    assert [r["id"] for r in en] == ["mgsm#0", "mgsm#1"] and en[0]["question"] == rows[0]["question"]


def test_engine_backoff_rate_limit_and_retry_after():
    import asyncio

    cfg = T.EngineConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env=None, backoff_base_s=1.0,
                         backoff_max_s=5.0)
    engine = T.Engine(cfg, None)
    delays = [engine._backoff(a) for a in range(6)]
    assert all(0.5 * min(5, 2 ** a) <= d <= min(5, 2 ** a) for a, d in enumerate(delays))
    assert tengine._retry_after("7") == 7.0 and tengine._retry_after(None) is None and tengine._retry_after("soon") is None
    assert 0 <= tengine._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 600  # a date in the past -> no wait

    waits = []

    async def record(s):
        waits.append(s)

    async def burst():
        limiter = tengine.RateLimiter(60, record, clock=lambda: 100.0)  # a frozen clock: 1 request per second
        for _ in range(3):
            await limiter.wait()
    asyncio.run(burst())
    assert waits == [1.0, 2.0]


def test_config_errors_are_one_line_naming_file_and_field(tmp_path, llm, bank, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"engine": {"base_url": "http://x/v1", "model": "m", "temprature": 0}}))
    with pytest.raises(ConfigError, match=r"bad.yaml: field 'engine.temprature': unknown field"):
        T.load_translate_config(bad)
    bad.write_text(yaml.safe_dump({"engine": {"base_url": "http://x/v1", "model": "m"}, "prompt_version": "v9"}))
    with pytest.raises(ConfigError, match=r"field 'prompt_version': unknown version 'v9'"):
        T.load_translate_config(bad)
    assert main(["translate", str(bad), "--langs", "es", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "prompt_version" in err

    # a missing key variable is named (the variable, never a value), before anything is written
    cfg = write_config(tmp_path / "t.yaml", llm.url, engine={"api_key_env": "LMX_NOT_SET_ANYWHERE"})
    assert main(["translate", str(cfg), "--langs", "es", "--out", str(tmp_path / "o"), "--source-dir", str(bank),
                 "--quiet"]) == 2
    assert "LMX_NOT_SET_ANYWHERE" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["translate", str(cfg), "--langs", "xx", "--out", str(tmp_path / "o"), "--source-dir", str(bank)]) == 2
    assert "unknown language code 'xx'" in capsys.readouterr().err


def test_cli_end_to_end_prints_a_summary(bank, llm, tmp_path, capsys):
    cfg = write_config(tmp_path / "t.yaml", llm.url)
    rc = main(["translate", str(cfg), "--langs", "es", "--out", str(tmp_path / "o"), "--source-dir", str(bank),
               "--files", "level-1-given-desc/*.jsonl", "--limit", "2", "--quiet", "--format", "json"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"lang": "es", "units": 2, "translated": 2, "rejected": 0, "reject_rate": 0.0, "engine_errors": 0,
                     "top_reason": "", "tokens": rows[0]["tokens"]}] and rows[0]["tokens"] > 0
    assert sorted(p.name for p in (tmp_path / "o" / "en" / "level-1-given-desc").iterdir()) == [
        "AddReminder-level-1-1.jsonl", "Calculator-level-1-1.jsonl"]


def test_a_refused_key_stops_the_run_without_leaking_it(bank, llm, tmp_path, capsys):
    llm.script = {("es", name): [http(401)] for name in DIALOGUES}
    cfg = write_config(tmp_path / "t.yaml", llm.url, engine={"max_concurrency": 3})
    assert main(["translate", str(cfg), "--langs", "es", "--out", str(tmp_path / "o"), "--source-dir", str(bank),
                 "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and KEY_ENV in err and KEY not in err
    assert len(llm.requests) <= 3  # the run stopped at the first refusal of each worker, nothing was retried
    assert not (tmp_path / "o" / "manifest.json").exists() and not list((tmp_path / "o").rglob("*.json"))
