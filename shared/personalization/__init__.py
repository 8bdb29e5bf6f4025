"""Personalization: ``%%Name%%`` merge tags and ``personalizationFormulas``.

A value for a merge tag comes from, first to last: the recipient's personalization in
the send, the contact's attributes, a formula result, the send's defaults, the content's
defaults. Names match case-insensitively. A tag with no value anywhere renders empty.
"""

from shared.personalization.formulas import FormulaError, compile_formula
from shared.personalization.merge import (
    MergeTagError,
    PersonalizationError,
    Personalizer,
    compile_tree,
    find_merge_tags,
    render,
    tag_names,
)

__all__ = [
    "FormulaError",
    "MergeTagError",
    "PersonalizationError",
    "Personalizer",
    "compile_formula",
    "compile_tree",
    "find_merge_tags",
    "render",
    "tag_names",
]
