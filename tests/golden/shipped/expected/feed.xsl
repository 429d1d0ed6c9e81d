<?xml version="1.0" encoding="utf-8"?>
<!-- feedwerk: shows an RSS 2.0 or Atom 1.0 feed opened in a browser as a readable
     page that explains how to subscribe. Feed readers ignore this stylesheet. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom dc">
  <xsl:output method="html" encoding="utf-8" doctype-system="about:legacy-compat"/>

  <xsl:variable name="title" select="/rss/channel/title | /atom:feed/atom:title"/>
  <xsl:variable name="lang" select="/rss/channel/language | /atom:feed/@xml:lang"/>
  <xsl:variable name="self" select="(/rss/channel/atom:link[@rel='self'] | /atom:feed/atom:link[@rel='self'])[1]/@href"/>
  <xsl:variable name="home" select="(/rss/channel/link | /atom:feed/atom:link[@rel='alternate']/@href)[1]"/>

  <xsl:template match="/">
    <html lang="de">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> – Feed</title>
        <style>
          body{font-family:system-ui,sans-serif;max-width:44rem;margin:0 auto;padding:1rem;line-height:1.5;color:#1b1b1b;background:#fff}
          a{color:#0645ad}
          .box{background:#eef4fb;border:1px solid #b6cce6;border-radius:.4rem;padding:.8rem 1rem;margin:1rem 0}
          .box h2{margin-top:0;font-size:1.1rem}
          code{background:#fff;border:1px solid #ccd;padding:.1rem .3rem;word-break:break-all}
          article{border-bottom:1px solid #ddd;padding:.5rem 0}
          h3{font-size:1.05rem;margin:.2rem 0}
          .meta{color:#555;font-size:.9rem}
        </style>
      </head>
      <body>
        <main>
          <h1><xsl:value-of select="$title"/></h1>
          <section class="box" aria-labelledby="abo">
            <h2 id="abo">Dies ist ein Newsfeed</h2>
            <p>Sie sehen einen Web-Feed (<xsl:choose><xsl:when test="/rss">RSS 2.0</xsl:when><xsl:otherwise>Atom 1.0</xsl:otherwise></xsl:choose>).
              Um ihn zu abonnieren, kopieren Sie diese Adresse in Ihren Feedreader
              (zum Beispiel Thunderbird, Feedly, Miniflux, NetNewsWire oder newsboat):</p>
            <p><code><xsl:value-of select="$self"/></code></p>
            <p>Neue Meldungen erscheinen dann automatisch in Ihrem Feedreader.
              <xsl:if test="$home">Zur Website: <a href="{$home}"><xsl:value-of select="$home"/></a></xsl:if></p>
          </section>
          <h2>Neueste Meldungen</h2>
          <xsl:apply-templates select="/rss/channel/item | /atom:feed/atom:entry"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <article>
      <h3><a href="{link}"><xsl:value-of select="title"/></a></h3>
      <p class="meta"><xsl:call-template name="rss-date"><xsl:with-param name="d" select="pubDate"/></xsl:call-template>
        <xsl:if test="dc:creator"> · <xsl:value-of select="dc:creator"/></xsl:if></p>
      <p><xsl:value-of select="description"/></p>
    </article>
  </xsl:template>

  <!-- "Tue, 04 Jun 2024 07:00:00 +0000" (as feedwerk writes it) → "04.06.2024" -->
  <xsl:template name="rss-date">
    <xsl:param name="d"/>
    <xsl:variable name="m" select="string-length(substring-before('JanFebMarAprMayJunJulAugSepOctNovDec', substring($d, 9, 3))) div 3 + 1"/>
    <xsl:value-of select="concat(substring($d, 6, 2), '.', format-number($m, '00'), '.', substring($d, 13, 4))"/>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article>
      <h3><a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a></h3>
      <p class="meta"><xsl:value-of select="substring(atom:published, 9, 2)"/>.<xsl:value-of select="substring(atom:published, 6, 2)"/>.<xsl:value-of select="substring(atom:published, 1, 4)"/>
        <xsl:if test="atom:author/atom:name"> · <xsl:value-of select="atom:author/atom:name"/></xsl:if></p>
      <p><xsl:value-of select="atom:summary"/></p>
    </article>
  </xsl:template>
</xsl:stylesheet>
