"""The mask metrics and prompts of ssseg.evaluation.metrics, against values computed by hand."""
import numpy as np
import pytest

from ssseg.evaluation.metrics import boundarymap, boundaryradius, centerclick, fmeasure, jaccard, maskbox, maskiou


def square(shape, top, left, side, dx=0):
    mask = np.zeros(shape, bool)
    mask[top:top + side, left + dx:left + dx + side] = True
    return mask


def test_maskiou_counts_pixels():
    gt = np.zeros((4, 4), bool)
    gt[0, :2] = True  # 2 pixels
    pred = np.zeros((4, 4), bool)
    pred[0, 1:4] = True  # 3 pixels, 1 shared: union 4
    assert maskiou(pred, gt) == pytest.approx(1 / 4)
    assert maskiou(gt, gt) == 1.0
    assert maskiou(pred, np.zeros((4, 4), bool)) == 0.0
    assert maskiou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0  # nothing to find, nothing found
    assert maskiou(pred.astype(np.uint8) * 255, gt.astype(np.float32)) == pytest.approx(1 / 4)  # non-zero is in


def test_maskiou_refuses_other_shapes():
    with pytest.raises(ValueError, match='one shape'):
        maskiou(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        maskiou(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))


def test_jaccard_of_a_shifted_square():
    gt = square((50, 50), 10, 10, 10)
    # shifted right by 2: 8 x 10 pixels shared, 12 x 10 in the union
    assert jaccard(square((50, 50), 10, 10, 10, dx=2), gt) == pytest.approx(80 / 120)
    assert jaccard(np.zeros((50, 50)), np.zeros((50, 50))) == 1.0
    assert jaccard(np.zeros((50, 50)), gt) == 0.0


def test_boundary_of_a_square_is_its_outline_half_a_pixel_up_left():
    """seg2bmap: a 10 x 10 square at rows/cols 10..19 has the outline of rows/cols 9..19 (4 * 11 - 4 = 40 pixels)."""
    bmap = boundarymap(square((50, 50), 10, 10, 10))
    outline = np.zeros((50, 50), bool)
    outline[9:20, 9:20] = True
    outline[10:19, 10:19] = False
    assert bmap.sum() == 40
    np.testing.assert_array_equal(bmap, outline)


def test_boundary_at_the_image_border():
    """A mask filling the image has no boundary; one filling the left half only the column at its right edge."""
    assert not boundarymap(np.ones((6, 8), bool)).any()
    half = np.zeros((6, 8), bool)
    half[:, :4] = True
    expected = np.zeros((6, 8), bool)
    expected[:, 3] = True
    np.testing.assert_array_equal(boundarymap(half), expected)


def test_boundary_radius_is_a_share_of_the_diagonal():
    assert boundaryradius((50, 50)) == 1  # 0.008 * 70.7 = 0.57
    assert boundaryradius((480, 854)) == 8  # DAVIS 480p: 0.008 * 979.6 = 7.8
    assert boundaryradius((50, 50), bound_th=3) == 3  # >= 1: pixels
    with pytest.raises(ValueError, match='bound_th'):
        boundaryradius((50, 50), bound_th=0)


def test_fmeasure_of_a_square_shifted_by_two():
    """50 x 50 image: tolerance radius 1 (same pixel or a 4-neighbour). The 40-pixel outlines (corners at rows 9..19,
    cols 9..19 and cols 11..21) match on 10 of the 11 pixels of the top and of the bottom row, and on the 2 inner
    pixels of one side column next to those rows (rows 10 and 18); the other side column is 2 columns from any outline
    pixel. So 22 of 40 on each side: P = R = 0.55, F = 0.55."""
    gt = square((50, 50), 10, 10, 10)
    assert fmeasure(square((50, 50), 10, 10, 10, dx=2), gt) == pytest.approx(0.55)
    assert fmeasure(gt, square((50, 50), 10, 10, 10, dx=2)) == pytest.approx(0.55)


def test_fmeasure_within_tolerance_is_one():
    """Shifted by one pixel every outline pixel has the other's within radius 1: F = 1 while J = 90 / 110; shifted by
    three, a 3-pixel tolerance (bound_th >= 1 is pixels) matches them all again."""
    gt = square((50, 50), 10, 10, 10)
    pred = square((50, 50), 10, 10, 10, dx=1)
    assert fmeasure(pred, gt) == 1.0
    assert jaccard(pred, gt) == pytest.approx(90 / 110)
    assert fmeasure(square((50, 50), 10, 10, 10, dx=3), gt, bound_th=3) == 1.0


def test_fmeasure_empty_cases():
    gt = square((50, 50), 10, 10, 10)
    empty = np.zeros((50, 50), bool)
    assert fmeasure(empty, empty) == 1.0
    assert fmeasure(empty, gt) == 0.0
    assert fmeasure(gt, empty) == 0.0
    assert fmeasure(gt, gt) == 1.0
    assert fmeasure(square((50, 50), 30, 30, 10), gt) == 0.0  # far apart: no boundary pixel matches


def test_centerclick_on_a_rectangle():
    """Rows 2..6, cols 3..10: the distance to the background is min(r - 1, 7 - r, c - 2, 11 - c); 3 at row 4, cols
    5..8; the first of those in row-major order is (x=5, y=4)."""
    mask = np.zeros((10, 15), bool)
    mask[2:7, 3:11] = True
    assert centerclick(mask) == (5, 4)


def test_centerclick_on_an_l_shape():
    """12 x 12: the left 4 columns and the bottom 4 rows. The image border counts as boundary, so along each bar
    the distance is at most 2; in the corner square (rows 8..11, cols 0..3) pixel (row 9, col 2) is 3 from the
    left border, 3 from the bottom one and sqrt(2^2 + 2^2) = 2.83 from the background pixel (row 7, col 4), and every
    other pixel is nearer to something. The bounding-box centre (5.5, 5.5) would lie off the mask."""
    mask = np.zeros((12, 12), bool)
    mask[:, :4] = True
    mask[8:, :] = True
    assert centerclick(mask) == (2, 9)


def test_centerclick_single_pixel_and_empty():
    mask = np.zeros((5, 5), bool)
    mask[0, 4] = True
    assert centerclick(mask) == (4, 0)
    with pytest.raises(ValueError, match='at least one pixel'):
        centerclick(np.zeros((5, 5), bool))


def test_maskbox_is_inclusive_xyxy():
    mask = np.zeros((10, 15), bool)
    mask[2:7, 3:11] = True
    mask[8, 12] = True
    assert maskbox(mask) == (3, 2, 12, 8)
    one = np.zeros((4, 4), bool)
    one[1, 2] = True
    assert maskbox(one) == (2, 1, 2, 1)
    with pytest.raises(ValueError, match='at least one pixel'):
        maskbox(np.zeros((4, 4), bool))
