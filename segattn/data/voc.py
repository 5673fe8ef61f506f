"""Pascal VOC 2012 with the SBD augmented set: 21 classes (background included), 255 ignored.

Layout: the official ``VOCtrainval_11-May-2012.tar`` plus, for ``trainaug``,
the SBD labels converted to PNG (mmsegmentation's
``tools/dataset_converters/voc_aug.py VOCdevkit VOCdevkit/VOCaug`` writes
them; any ``SegmentationClassAug`` of grey index PNGs will do)::

    ROOT/JPEGImages/<id>.jpg
    ROOT/SegmentationClass/<id>.png        (palette PNGs: the palette index is the class)
    ROOT/SegmentationClassAug/<id>.png     (SBD, grey index PNGs)
    ROOT/ImageSets/Segmentation/{train,val,trainval}.txt, and trainaug.txt
        (or aug.txt, which mmsegmentation's converter writes and ``trainaug`` joins to train.txt)

ROOT is ``VOCdevkit/VOC2012``. A label is read from ``SegmentationClass``
where the official set has it, else from ``SegmentationClassAug``.
"""
import os

from .listed import ListedDataset, listed_pairs, read_list, register, table

CLASS_NAMES = [
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
    'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor',
]


def voc_palette(n: int = 256):
    """The colour map of VOC's palette PNGs: the bits of the index spread over R, G and B."""
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return colours


@register
class VOCDataset(ListedDataset):
    name = "voc"
    title = "Pascal VOC 2012"
    class_names = CLASS_NAMES
    palette = voc_palette(21)
    labels = {"": table({k: k for k in range(21)})}
    layout = ("ROOT/JPEGImages/<id>.jpg, ROOT/SegmentationClass[Aug]/<id>.png and "
              "ROOT/ImageSets/Segmentation/<split>.txt (ROOT = VOCdevkit/VOC2012)")

    @classmethod
    def split_files(cls, root, split):
        lists = os.path.join(root, "ImageSets", "Segmentation")
        if split == "trainaug" and not os.path.isfile(os.path.join(lists, "trainaug.txt")):
            ids = read_list(os.path.join(lists, "train.txt"), cls.layout)
            ids += read_list(os.path.join(lists, "aug.txt"), "ImageSets/Segmentation/trainaug.txt, or aug.txt (from "
                             "mmsegmentation's voc_aug converter) beside train.txt, for the trainaug split")
        else:
            ids = read_list(os.path.join(lists, f"{split}.txt"), cls.layout)
        return listed_pairs(root, split, ids, ("SegmentationClass", "SegmentationClassAug"), cls.layout)
