"""Hand-designed reference networks: MobileNetV3-Large and -Small, from the paper's tables.

Howard et al. 2019, "Searching for MobileNetV3", Tables 1 and 2, written in this package's
architecture strings. Expansions are ratios of a block's input width (``e2.3`` on 80 channels
gives 184, ``e3.67`` on 24 gives 88). With 1000 classes and 3 input channels they have the
parameter counts of the reference implementation (5,483,032 and 2,542,856).
"""

from __future__ import annotations

from nas.arch import Arch

MOBILENETV3_LARGE = Arch.from_string("-".join([
    "stem_c16_hs",
    "ir_k3_e1_c16_s1_re",
    "ir_k3_e4_c24_s2_re", "ir_k3_e3_c24_s1_re",
    "ir_k5_e3_c40_s2_re_se", "ir_k5_e3_c40_s1_re_se", "ir_k5_e3_c40_s1_re_se",
    "ir_k3_e6_c80_s2_hs", "ir_k3_e2.5_c80_s1_hs", "ir_k3_e2.3_c80_s1_hs", "ir_k3_e2.3_c80_s1_hs",
    "ir_k3_e6_c112_s1_hs_se", "ir_k3_e6_c112_s1_hs_se",
    "ir_k5_e6_c160_s2_hs_se", "ir_k5_e6_c160_s1_hs_se", "ir_k5_e6_c160_s1_hs_se",
    "head_c960_f1280_hs",
]))

MOBILENETV3_SMALL = Arch.from_string("-".join([
    "stem_c16_hs",
    "ir_k3_e1_c16_s2_re_se",
    "ir_k3_e4.5_c24_s2_re", "ir_k3_e3.67_c24_s1_re",
    "ir_k5_e4_c40_s2_hs_se", "ir_k5_e6_c40_s1_hs_se", "ir_k5_e6_c40_s1_hs_se",
    "ir_k5_e3_c48_s1_hs_se", "ir_k5_e3_c48_s1_hs_se",
    "ir_k5_e6_c96_s2_hs_se", "ir_k5_e6_c96_s1_hs_se", "ir_k5_e6_c96_s1_hs_se",
    "head_c576_f1024_hs",
]))

REFERENCES = {"mobilenetv3-large": MOBILENETV3_LARGE, "mobilenetv3-small": MOBILENETV3_SMALL}
