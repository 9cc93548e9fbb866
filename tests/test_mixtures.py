import pytest

from linguamix import mixtures
from linguamix.errors import ConfigError
from linguamix.mixtures import Mixture

CORE = {"en", "es", "ja", "bn", "sw"}


def test_paper_design_has_22_mixtures_as_in_figure_1():
    mix = mixtures.design_mixtures("paper")
    assert len(mix) == 22
    by_n = {}
    for m in mix:
        by_n.setdefault(m.n_languages, []).append(set(m.languages))
    assert {n: len(v) for n, v in by_n.items()} == {1: 1, 2: 4, 4: 5, 5: 1, 6: 5, 9: 5, 10: 1}
    assert by_n[1] == [{"en"}]
    assert sorted(map(sorted, by_n[2])) == sorted(sorted({"en", x}) for x in ["es", "ja", "bn", "sw"])
    four = [s for s in by_n[4]]
    assert all(len(s) == 4 and s <= CORE for s in four) and len({frozenset(s) for s in four}) == 5
    assert {"es", "ja", "bn", "sw"} in four  # the one 4-subset without English
    assert by_n[5] == [CORE]
    assert {frozenset(s - {"fr", "th"}) for s in by_n[6]} == {frozenset(s) for s in four}
    assert all({"fr", "th"} <= s for s in by_n[6])
    assert {frozenset(s - {"fr", "th", "de", "ru", "zh"}) for s in by_n[9]} == {frozenset(s) for s in four}
    assert by_n[10] == [CORE | {"fr", "th", "de", "ru", "zh"}]
    assert all("te" not in s for v in by_n.values() for s in v)  # Telugu is never trained on
    assert len({m.id for m in mix}) == 22


def test_ids_are_canonical_and_order_independent():
    a, b = Mixture(("sw", "en")), Mixture(("en", "sw"))
    assert a.id == b.id == "en+sw" and a == b
    assert a.languages == ("en", "sw")  # language-table order
    assert Mixture.from_id("sw+en") == a
    assert Mixture.from_id(a.id).id == a.id


def test_exposure_direct_vs_zero_shot():
    m = Mixture.from_id("bn+en+es+ja")
    assert m.exposure("bn") == "direct" and m.exposure("en") == "direct"
    assert m.exposure("sw") == "zero_shot" and m.exposure("te") == "zero_shot"
    with pytest.raises(ConfigError, match="unknown language code 'qq'"):
        m.exposure("qq")


def test_equal_fractions():
    m = Mixture.from_id("en+es+ja")
    assert m.fractions == pytest.approx({"en": 1 / 3, "es": 1 / 3, "ja": 1 / 3})


def test_custom_design_generators():
    design = [["en"], {"choose": 2, "from": ["es", "ja", "bn"], "plus": ["en"]}, {"choose": 3, "from": ["es", "ja", "bn"]}]
    mix = mixtures.expand_design(design)
    assert [m.id for m in mix] == ["en", "en+es+ja", "bn+en+es", "bn+en+ja", "bn+es+ja"]


@pytest.mark.parametrize("design, needle", [
    ([["en", "xx"]], "unknown language code 'xx'"),
    ([["en"], ["en"]], "already produced"),
    ([{"choose": 5, "from": ["en"]}], "choose"),
    ([{"pick": 1, "from": ["en"]}], "unknown field"),
    ([["en", "en"]], "twice"),
])
def test_bad_designs(design, needle):
    with pytest.raises(ConfigError, match=needle):
        mixtures.expand_design(design)


def test_pretrained_is_not_a_mixture():
    with pytest.raises(ConfigError, match="'pretrained' is the base model, not a training mixture"):
        Mixture.from_id(mixtures.PRETRAINED)
