"""A few real-format MovieLens-100K lines (GroupLens u.data / u.user / u.item) shared by the data tests."""

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t377\t5\t881251000\n"
U_USER = "196|49|M|writer|55105\n186|39|F|executive|00000\n22|25|M|writer|40206\n"
U_ITEM = ("242|Kolya (1996)|24-Jan-1997||http://us.imdb.com/M/title-exact?Kolya%20(1996)|0|0|0|0|0|1|0|0|0|0|0|0|0|0"
          "|0|0|0|0|0\n"
          "302|L.A. Confidential (1997)|01-Jan-1997||http://us.imdb.com/M/title-exact?L%2EA%2E+Confidential+(1997)"
          "|0|0|0|0|0|0|1|0|0|0|1|0|0|1|0|0|1|0|0\n"
          "377|Heavyweights (1994)|01-Jan-1994||http://us.imdb.com/M/title-exact?Heavyweights%20(1994)|0|0|0|0|1|1|0"
          "|0|0|0|0|0|0|0|0|0|0|0|0\n")
