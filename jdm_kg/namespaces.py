"""The namespaces of jdm-kg's model and guideline, and the guideline's IRI: at the bottom, so that
every layer (the input readers too) can name terms without importing the layers above.

>>> str(JDM.Patient)
'https://w3id.org/jdm-kg/vocab#Patient'
"""

from rdflib import Namespace, URIRef

__all__ = ["JDM", "JDMG", "GUIDELINE_IRI"]

JDM = Namespace("https://w3id.org/jdm-kg/vocab#")
JDMG = Namespace("https://w3id.org/jdm-kg/guideline/")
GUIDELINE_IRI = URIRef("https://w3id.org/jdm-kg/guideline")
